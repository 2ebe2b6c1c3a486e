package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// runHold waits for EOF on stdin, then becomes CMD. The racer starts one
// holder per deleter before its barrier and closes their stdin pipes at the
// release: fork and the Go runtime's start-up are then behind every deleter,
// and only CMD's own work separates their writes. Forked from a writer
// thread pinned to a CPU, the holder keeps that CPU.
func runHold(args []string) error {
	if len(args) < 2 || args[0] != "--" {
		return errors.New("usage: racer hold -- CMD [ARGS...]   (runs CMD at EOF on stdin)")
	}
	path, err := exec.LookPath(args[1])
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return fmt.Errorf("hold: %w", err)
	}
	return unix.Exec(path, args[1:], os.Environ())
}
