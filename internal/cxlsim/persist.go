package cxlsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// Persistence: with WithStateFile the model lives in a file, so that a
// test can kill the process that runs the simulated kernel (the daemon
// under --simulate) and start another on the same "kernel". The file is
// rewritten atomically after every completed mutation; one process at a
// time owns it through an flock on path+".lock".

// ErrStateLocked says another process owns the state file.
var ErrStateLocked = errors.New("cxlsim: state file is in use by another process")

func (k *Kernel) lockState() error {
	p := k.cfg.stateFile + ".lock"
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cxlsim: open %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrStateLocked, p)
		}
		return fmt.Errorf("cxlsim: lock %s: %w", p, err)
	}
	k.lockFile = f
	return nil
}

func (k *Kernel) unlockState() {
	if k.lockFile != nil {
		_ = unix.Flock(int(k.lockFile.Fd()), unix.LOCK_UN)
		k.lockFile.Close()
		k.lockFile = nil
	}
}

// loadState reads the state file when it exists. Work the previous
// process left in flight is finished the way the kernel would have
// finished it: pending nd/dax registrations complete, auto-assembly
// completes.
func (k *Kernel) loadState() (bool, error) {
	b, err := os.ReadFile(k.cfg.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cxlsim: read state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return false, fmt.Errorf("cxlsim: parse state %s: %w", k.cfg.stateFile, err)
	}
	if err := st.Topology.Validate(); err != nil {
		return false, fmt.Errorf("cxlsim: state %s: %w", k.cfg.stateFile, err)
	}
	if st.Writes == nil {
		st.Writes = map[string]int{}
	}
	if st.WriteValues == nil {
		st.WriteValues = map[string]int{}
	}
	k.cfg.profile = st.Profile
	k.cfg.topology = st.Topology
	k.st = &st
	k.index()
	for _, r := range k.st.Regions {
		r.refs = 1
		r.action = true
		if r.Pending {
			r.Pending = false
			r.Registered = true
		}
	}
	k.rebuildTree()
	for _, r := range slices.Clone(k.st.Regions) {
		if r.Assembling {
			k.finishAssembly(r)
		}
	}
	return true, nil
}

// saveLocked writes the state file (k.mu held).
func (k *Kernel) saveLocked() error {
	if k.cfg.stateFile == "" || k.st == nil {
		return nil
	}
	b, err := json.Marshal(k.st)
	if err != nil {
		return fmt.Errorf("cxlsim: encode state: %w", err)
	}
	if err := renameio.WriteFile(k.cfg.stateFile, b, 0o644); err != nil {
		return fmt.Errorf("cxlsim: save state: %w", err)
	}
	return nil
}

// saveOrLog saves after a mutation; a failure is logged, not returned,
// because the kernel's answer to the write does not depend on it.
func (k *Kernel) saveOrLog() {
	if err := k.saveLocked(); err != nil {
		slog.Error("cxlsim: state not saved", "err", err)
	}
}
