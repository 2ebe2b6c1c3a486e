package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

func newLockCommand() *cobra.Command {
	var (
		lockDir   string
		sysfsRoot string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "lock DECODER -- COMMAND [ARG...]",
		Short: "Run a command holding a root decoder's lock, serialized with cxlregiond",
		Long: `Take the root decoder's lock file (the one cxlregiond's writer for that root
decoder holds while it writes), run COMMAND while holding it, release it and
exit with COMMAND's status (128+N if a signal N killed it). Tools that write
the region sysfs files themselves (ndctl's cxl, scripts) are then never
concurrent with the daemon or with each other. SIGINT and SIGTERM are passed
to COMMAND.

lock asks the running daemon for its lock directory (Manager.LockDirectory)
and whether DECODER is one of its root decoders: a root decoder it does not
have exits 3 and COMMAND does not run. When the daemon is not running, lock
says so on stderr, checks DECODER in sysfs instead and takes the lock in
--lock-dir (made by cxlregiond, or by systemd-tmpfiles at boot).`,
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
			if !devname.IsDecoder(decoder) { // before it names a bus call or a sysfs path
				return usageErr("%q is not a root decoder name (want e.g. decoder0.0)", decoder)
			}
			dir, err := lockDirFor(cmd.Context(), cmd.ErrOrStderr(), decoder, lockDir, cmd.Flags().Changed("lock-dir"), sysfsRoot)
			if err != nil {
				return err
			}
			path, err := lock.LockPath(dir, decoder)
			if err != nil {
				return usageErr("%v", err)
			}
			if _, err := os.Stat(dir); err != nil {
				return &exitError{code: api.ExitFailure, err: fmt.Errorf("lock %s: lock directory: %w", decoder, err)}
			}
			return runLocked(cmd.Context(), decoder, path, timeout, args[1:])
		},
	}
	cmd.Flags().StringVar(&lockDir, "lock-dir", "/run/cxlregiond/lock", "the lock directory when cxlregiond is not running (when it runs, its own is used)")
	cmd.Flags().StringVar(&sysfsRoot, "sysfs-root", "/sys", "where sysfs is mounted, to check DECODER when cxlregiond is not running")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the lock after this long (default: wait)")
	return cmd
}

// lockDirFor checks that decoder is a root decoder and returns the lock
// directory to use. The running daemon is the authority for both; with no
// daemon, sysfs says whether the root decoder exists, a warning says the
// check was not the daemon's, and flagDir is used.
func lockDirFor(ctx context.Context, stderr io.Writer, decoder, flagDir string, flagSet bool, sysfsRoot string) (string, error) {
	daemonDir, err := daemonLockDir(ctx, decoder)
	if err == nil {
		if flagSet && filepath.Clean(flagDir) != daemonDir {
			return "", usageErr("lock %s: --lock-dir %s: cxlregiond locks in %s; a lock elsewhere would not serialize with it (drop --lock-dir)", decoder, flagDir, daemonDir)
		}
		return daemonDir, nil
	}
	if !errors.Is(err, errDaemonDown) {
		return "", err
	}
	fmt.Fprintf(stderr, "cxlregionctl: warning: %v; checking %s in %s and locking in %s\n", err, decoder, sysfsRoot, flagDir)
	if _, err := sysfs.Open(sysfsRoot).ReadRootDecoder(decoder); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", &exitError{code: api.ExitNotFound, err: fmt.Errorf("lock %s: no such root decoder in %s", decoder, sysfsRoot)}
		}
		return "", &exitError{code: api.ExitNotFound, err: fmt.Errorf("lock %s: %w", decoder, err)}
	}
	return flagDir, nil
}

// errDaemonDown is a daemon that is not on the bus, or a bus that is not
// there.
var errDaemonDown = errors.New("cxlregiond is not running")

// daemonLockDir asks the daemon for its lock directory and whether it has
// the root decoder.
func daemonLockDir(ctx context.Context, decoder string) (string, error) {
	c, err := connect()
	if err != nil {
		return "", fmt.Errorf("%w (%v)", errDaemonDown, errors.Unwrap(err))
	}
	defer c.Close()
	manager, err := c.properties(ctx, "lock "+decoder, api.ManagerPath, api.ManagerInterface)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == api.ExitUnreachable {
			return "", fmt.Errorf("%w (%s has no owner on the bus)", errDaemonDown, api.BusName)
		}
		return "", err
	}
	dir, ok := manager[api.PropLockDirectory].Value().(string)
	if !ok || !filepath.IsAbs(dir) {
		return "", &exitError{code: api.ExitFailure, err: fmt.Errorf("lock %s: cxlregiond publishes no lock directory (Manager.%s): is it older than this cxlregionctl?", decoder, api.PropLockDirectory)}
	}
	path, ok := api.RootDecoderPath(decoder)
	if !ok {
		return "", usageErr("%q is not a root decoder name (want e.g. decoder0.0)", decoder)
	}
	if _, err := c.properties(ctx, "lock "+decoder, path, api.RootDecoderInterface); err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == api.ExitNotFound {
			return "", &exitError{code: api.ExitNotFound, err: fmt.Errorf("lock %s: cxlregiond has no such root decoder (cxlregionctl status lists them)", decoder)}
		}
		return "", err
	}
	return filepath.Clean(dir), nil
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
