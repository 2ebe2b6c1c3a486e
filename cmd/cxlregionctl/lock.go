package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/lock"
)

func newLockCommand() *cobra.Command {
	var (
		lockDir string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "lock DECODER -- COMMAND [ARG...]",
		Short: "Run a command holding a root decoder's lock, serialized with cxlregiond",
		Long: `Take the root decoder's lock file (the one cxlregiond's writer for that root
decoder holds while it writes), run COMMAND while holding it, release it and
exit with COMMAND's status (128+N if a signal N killed it). Tools that write
the region sysfs files themselves (ndctl's cxl, scripts) are then never
concurrent with the daemon or with each other. SIGINT and SIGTERM are passed
to COMMAND. lock needs the lock directory (made by cxlregiond, or by
systemd-tmpfiles at boot), not the daemon itself.`,
		Example: `  cxlregionctl lock decoder0.0 -- cxl destroy-region -f region0
  cxlregionctl lock decoder0.0 --timeout 10s -- sh -c 'echo region0 > /sys/bus/cxl/devices/decoder0.0/delete_region'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return usageErr("usage: cxlregionctl lock DECODER -- COMMAND [ARG...]")
			}
			return nil
		},
		ValidArgsFunction: completeRootDecoders,
		RunE: func(cmd *cobra.Command, args []string) error {
			decoder := args[0]
			path, err := lock.LockPath(lockDir, decoder)
			if err != nil {
				return usageErr("%v", err)
			}
			if _, err := os.Stat(lockDir); err != nil {
				return &exitError{code: api.ExitFailure, err: fmt.Errorf("lock %s: lock directory %s: %w (is cxlregiond running? see --lock-dir)", decoder, lockDir, err)}
			}
			return runLocked(cmd.Context(), decoder, path, timeout, args[1:])
		},
	}
	cmd.Flags().StringVar(&lockDir, "lock-dir", "/run/cxlregiond/lock", "the daemon's lock directory (its --lock-dir)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the lock after this long (default: wait)")
	return cmd
}

func runLocked(ctx context.Context, decoder, path string, timeout time.Duration, argv []string) error {
	// Signals that arrive while waiting end the wait; once COMMAND runs
	// they are passed to it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if timeout > 0 {
		waitCtx, cancel = context.WithTimeout(waitCtx, timeout)
		defer cancel()
	}
	// The wait's signal watcher ends, and is waited for, before COMMAND
	// starts: otherwise it and the forwarder below would both read sigs,
	// and a signal meant for COMMAND could end a wait that was over.
	var watchers sync.WaitGroup
	waited := make(chan struct{})
	interrupted := false
	watchers.Go(func() {
		select {
		case <-sigs:
			interrupted = true
			cancel()
		case <-waitCtx.Done():
		case <-waited:
		}
	})
	unlock, err := lock.LockFile(waitCtx, path)
	close(waited)
	watchers.Wait()
	if err == nil && interrupted {
		// A signal came as the lock was taken: do not start COMMAND.
		_ = unlock()
		err = context.Canceled
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &exitError{code: api.ExitBusy, err: fmt.Errorf("lock %s: still held by another writer after %s", decoder, timeout)}
		}
		return &exitError{code: api.ExitFailure, err: fmt.Errorf("lock %s: %w", decoder, err)}
	}
	defer func() { _ = unlock() }()

	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := child.Start(); err != nil {
		code := api.ExitFailure
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return &exitError{code: code, err: fmt.Errorf("lock %s: %w", decoder, err)}
	}
	done := make(chan struct{})
	watchers.Go(func() {
		for {
			select {
			case s := <-sigs:
				_ = child.Process.Signal(s)
			case <-done:
				return
			}
		}
	})
	err = child.Wait()
	close(done)
	watchers.Wait()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &exitError{code: 128 + int(ws.Signal())}
		}
		return &exitError{code: exit.ExitCode()}
	}
	return &exitError{code: api.ExitFailure, err: fmt.Errorf("lock %s: %w", decoder, err)}
}
