package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// liveSettings holds the settings in force and applies reloads of the
// config file: every key takes effect at once.
type liveSettings struct {
	path string // config file; "" when none
	// optional: path is the default one, which may not exist (the daemon
	// then runs on its defaults until the file appears and is reloaded).
	optional bool
	flags    map[string]bool // keys given on the command line, which win
	level    *slog.LevelVar
	log      *slog.Logger
	// metricsAddr receives the new address when it changes.
	metricsAddr chan string
	// onSettle applies a new settle window and bound quiet time.
	onSettle func(window, boundQuiet time.Duration)
	// onRescan applies a new rescan interval.
	onRescan func(time.Duration)

	mu  sync.Mutex // guards cur; the fields above are set before watch starts
	cur settings
}

func (l *liveSettings) get() settings {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

func (l *liveSettings) defaultTimeout() time.Duration { return l.get().DefaultTimeout }

// loadSettings reads the config file over base. A missing optional file
// (the default path, not named on the command line) is no file.
func loadSettings(path string, optional bool, base settings, flags map[string]bool) (settings, error) {
	if path == "" {
		return base, nil
	}
	f, err := os.Open(path)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return base, nil
	}
	if err != nil {
		return base, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	kv, err := parseConfig(f)
	if err != nil {
		return base, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := base.apply(kv, flags); err != nil {
		return base, fmt.Errorf("config file %s: %w", path, err)
	}
	return base, nil
}

// reload re-reads the config file over the settings it started from; cause
// ("SIGHUP", "file changed") goes to the log. A broken file is logged and
// ignored: the daemon keeps what it has.
func (l *liveSettings) reload(base settings, cause string) {
	next, err := loadSettings(l.path, l.optional, base, l.flags)
	if err != nil {
		l.log.Error("config reload failed; keeping the current settings", "cause", cause, "err", err)
		return
	}
	l.mu.Lock()
	prev := l.cur
	changed := changedKeys(prev, next)
	l.cur = next
	cur := l.cur
	onSettle, onRescan := l.onSettle, l.onRescan
	l.mu.Unlock()
	l.level.Set(cur.LogLevel)
	if onSettle != nil && (cur.SettleWindow != prev.SettleWindow || cur.BoundQuiet != prev.BoundQuiet) {
		onSettle(cur.SettleWindow, cur.BoundQuiet)
	}
	if onRescan != nil && cur.RescanInterval != prev.RescanInterval {
		onRescan(cur.RescanInterval)
	}
	if cur.MetricsListen != prev.MetricsListen {
		select {
		case l.metricsAddr <- cur.MetricsListen:
		default:
			l.log.Warn("metrics address change dropped: a previous change is still being applied")
		}
	}
	l.log.Info("config reloaded", "file", l.path, "cause", cause, "changed", changed)
}

// watch reloads the config file when it changes (fsnotify, on its
// directory, so that editors that replace the file are seen) or on
// SIGHUP, until ctx ends.
func (l *liveSettings) watch(ctx context.Context, base settings, hup <-chan os.Signal) {
	if l.path == "" {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				l.log.Info("SIGHUP: no config file to reload")
			}
		}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		l.log.Error("cannot watch the config file; reload with SIGHUP", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(l.path)); err != nil {
			lvl := slog.LevelError
			if l.optional && errors.Is(err, fs.ErrNotExist) {
				lvl = slog.LevelInfo
			}
			l.log.Log(ctx, lvl, "cannot watch the config file; reload with SIGHUP", "file", l.path, "err", err)
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	// Editors write a file in several steps; reload once they are done.
	const settle = 200 * time.Millisecond
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	target := filepath.Clean(l.path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			// systemctl reload (ExecReload= sends SIGHUP): systemd shows
			// "reloading" until the file is applied.
			notifyReloading()
			l.reload(base, "SIGHUP")
			notifyReloaded()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) == target && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce.Reset(settle)
			}
		case err, ok := <-errs:
			if ok {
				l.log.Warn("config file watch", "err", err)
			}
		case <-debounce.C:
			l.reload(base, "file changed")
		}
	}
}
