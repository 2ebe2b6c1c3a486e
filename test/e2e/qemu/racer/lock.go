package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// runLock is `flock FILE CMD...`: Debian's busybox-static has no flock applet
// and the serialized control must not depend on the daemon's CLI.
func runLock(args []string) error {
	if len(args) < 3 || args[1] != "--" {
		return errors.New("usage: racer lock FILE -- CMD [ARGS...]")
	}
	f, err := os.OpenFile(args[0], os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("flock %s: %w", args[0], err)
	}
	cmd := exec.Command(args[2], args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// Pass the wrapped command's status through, like flock(1).
		os.Exit(exit.ExitCode())
	}
	return err
}
