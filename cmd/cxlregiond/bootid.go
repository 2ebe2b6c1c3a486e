package main

import (
	"log/slog"
	"os"
	"strings"
)

// bootIDPath is the kernel's random id of the running boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// bootID returns the running boot's id, which the engine's journal stamps
// on every intent so that intents of an earlier boot are closed without
// touching sysfs (internal/journal's package doc). Without it recovery
// judges such intents by sysfs identity alone; that is logged.
func bootID(log *slog.Logger) string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		log.Warn("no boot id: journalled intents of an earlier boot will be judged by sysfs identity alone", "err", err)
		return ""
	}
	return strings.TrimSpace(string(b))
}
