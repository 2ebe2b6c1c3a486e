package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// newLogger logs to the journal with structured fields when stderr is
// connected to it (systemd sets JOURNAL_STREAM), otherwise as text on
// stderr.
func newLogger(stderr io.Writer, level *slog.LevelVar) *slog.Logger {
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		return slog.New(&journalHandler{level: level})
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// journalHandler sends each record to journald with its priority, and its
// attributes as fields (ROOT_DECODER=decoder0.0), so `journalctl -u
// cxlregiond ROOT_DECODER=decoder0.0` finds them.
type journalHandler struct {
	level  slog.Leveler
	attrs  []slog.Attr
	groups string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{}
	var text strings.Builder
	text.WriteString(r.Message)
	add := func(prefix string, a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return
		}
		key := journalField(prefix + a.Key)
		vars[key] = a.Value.String()
		fmt.Fprintf(&text, " %s=%s", prefix+a.Key, a.Value.String())
	}
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		add(h.groups, a)
		return true
	})
	return journal.Send(text.String(), priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.groups += name + "_"
	return &n
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// journalField makes a slog key a journal field name: upper case letters,
// digits and underscores, not starting with an underscore (those are
// trusted fields journald sets itself).
func journalField(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	f := strings.TrimLeft(b.String(), "_0123456789")
	switch f {
	case "":
		return "FIELD"
	case "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER":
		return "ATTR_" + f
	}
	return f
}
