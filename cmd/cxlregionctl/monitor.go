package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
)

func newMonitorCommand() *cobra.Command {
	var asJSON, noReconnect bool
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Print changes to regions, root decoders and jobs as they happen",
		Long: `Follow the daemon's signals and print one line per change until
interrupted. With --json each line is one JSON object:

  {"time": "...", "event": "region_added", "object": "/io/github/cxlregion1/regions/region0",
   "region": {...}}

Events: region_added, region_changed, region_removed, root_decoder_added,
root_decoder_changed, root_decoder_removed, job_added, job_completed,
job_removed, manager_changed. *_changed events list the changed properties
in "changed" and carry the whole object.

When the daemon leaves the bus (a restart) or the bus connection drops,
monitor says so on stderr, waits for the daemon to come back, and prints
what changed meanwhile as ordinary events (an object that went away as
*_removed, a new one as *_added, a changed one as *_changed). With
--no-reconnect it exits with status 7 instead.`,
		Example: "  cxlregionctl monitor\n  cxlregionctl monitor --json | jq -c 'select(.event == \"region_removed\")'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			m := &monitorState{out: cmd.OutOrStdout(), notes: cmd.ErrOrStderr(), asJSON: asJSON,
				reconnect: !noReconnect, connect: connect, retry: time.Second}
			return m.run(ctx)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	cmd.Flags().BoolVar(&noReconnect, "no-reconnect", false, "exit (status 7) when the daemon leaves the bus instead of waiting for it to come back")
	return cmd
}

// errDaemonLeft and errBusClosed end one connection's follow loop; with
// reconnect, monitor waits and resynchronizes.
var (
	errDaemonLeft = errors.New("cxlregiond left the bus")
	errBusClosed  = errors.New("the bus connection closed")
)

// run follows the daemon until ctx ends: one connection at a time, and,
// with reconnect, a new one whenever the bus connection drops.
func (m *monitorState) run(ctx context.Context) error {
	c, err := m.connect()
	if err != nil {
		return err
	}
	for {
		err := m.follow(ctx, c)
		c.Close()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if !m.reconnect || !(errors.Is(err, errDaemonLeft) || errors.Is(err, errBusClosed)) {
			var ee *exitError
			if errors.As(err, &ee) {
				return err
			}
			return &exitError{code: api.ExitUnreachable, err: fmt.Errorf("monitor: %w", err)}
		}
		m.note("monitor: %v; reconnecting (--no-reconnect exits instead)", err)
		for c = nil; c == nil; {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(m.retry):
			}
			c, _ = m.connect()
		}
	}
}

// follow subscribes first, then reads the managed objects, so no change
// falls between the two; PropertiesChanged carries only what changed, so
// the objects are kept to print them whole. When the daemon leaves the bus
// and reconnect is on, it waits on the same connection for the daemon to
// return and resynchronizes. It returns nil when ctx ends.
func (m *monitorState) follow(ctx context.Context, c *client) error {
	for _, match := range [][]godbus.MatchOption{
		{godbus.WithMatchSender(api.BusName)},
		{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, api.BusName)},
	} {
		if err := c.conn.AddMatchSignalContext(ctx, match...); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	signals := make(chan *godbus.Signal, 1024)
	c.conn.Signal(signals)
	defer c.conn.RemoveSignal(signals)
	for {
		if err := m.sync(ctx, c, signals); err != nil {
			return err
		}
		err := m.handleUntilGone(ctx, signals)
		if !errors.Is(err, errDaemonLeft) || !m.reconnect {
			return err
		}
		m.note("monitor: %v; waiting for it to come back (--no-reconnect exits instead)", err)
	}
}

// sync reads the managed objects. On the first connection they are the
// baseline; after a reconnect the differences from what was known are
// printed as events. A daemon that is not on the bus yet is waited for.
func (m *monitorState) sync(ctx context.Context, c *client, signals <-chan *godbus.Signal) error {
	for {
		objs, err := c.managedObjects(ctx)
		if err == nil {
			if objs == nil {
				objs = api.ManagedObjects{}
			}
			if !m.synced {
				m.objects, m.synced = objs, true
				return nil
			}
			m.note("monitor: cxlregiond is back; changes while it was away follow as events")
			return m.resync(objs)
		}
		var ee *exitError
		if !m.synced || !errors.As(err, &ee) || ee.code != api.ExitUnreachable {
			return err
		}
		// Not on the bus (yet): wait until a NameOwnerChanged gives it an
		// owner, or retry now and then in case that signal was missed.
		if err := waitForOwner(ctx, signals, m.retry*5); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// waitForOwner returns when the daemon's name gets an owner, after
// timeout, or when ctx ends.
func waitForOwner(ctx context.Context, signals <-chan *godbus.Signal, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			return nil
		case s, ok := <-signals:
			if !ok {
				return errBusClosed
			}
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 && s.Body[2] != "" {
				return nil
			}
		}
	}
}

// handleUntilGone prints the daemon's signals until ctx ends (nil), the
// daemon leaves the bus or the connection closes.
func (m *monitorState) handleUntilGone(ctx context.Context, signals <-chan *godbus.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-signals:
			if !ok {
				return errBusClosed
			}
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" {
				if len(s.Body) == 3 && s.Body[2] == "" {
					return errDaemonLeft
				}
				continue
			}
			if err := m.handle(s); err != nil {
				return err
			}
		}
	}
}

// resync replaces the known objects by objs, printing what went away as
// *_removed, what is new as *_added and what changed as *_changed.
func (m *monitorState) resync(objs api.ManagedObjects) error {
	now := time.Now()
	old := m.objects
	for _, path := range sortedObjectPaths(old) {
		for _, iface := range sortedKeys(old[path]) {
			if _, still := objs[path][iface]; still {
				continue
			}
			if kind := kindOf(iface); kind != "" {
				if err := m.emit(now, kind+"_removed", path, iface, nil); err != nil {
					return err
				}
			}
		}
	}
	m.objects = objs
	for _, path := range sortedObjectPaths(objs) {
		for _, iface := range sortedKeys(objs[path]) {
			kind := kindOf(iface)
			if kind == "" {
				continue
			}
			before, had := old[path][iface]
			if !had {
				if err := m.emit(now, kind+"_added", path, iface, nil); err != nil {
					return err
				}
				continue
			}
			var changed []string
			for _, name := range sortedKeys(objs[path][iface]) {
				if b, ok := before[name]; !ok || !reflect.DeepEqual(b.Value(), objs[path][iface][name].Value()) {
					changed = append(changed, name)
				}
			}
			if len(changed) > 0 {
				if err := m.emit(now, kind+"_changed", path, iface, changed); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sortedObjectPaths(objs api.ManagedObjects) []godbus.ObjectPath {
	paths := make([]godbus.ObjectPath, 0, len(objs))
	for p := range objs {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return api.NaturalLess(string(paths[i]), string(paths[j])) })
	return paths
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// note tells the operator on stderr what monitor is doing about the
// connection.
func (m *monitorState) note(format string, args ...any) {
	fmt.Fprintf(m.notes, "cxlregionctl: "+format+"\n", args...)
}

type monitorState struct {
	out       io.Writer // events
	notes     io.Writer // what happens to the connection (stderr)
	asJSON    bool
	reconnect bool
	connect   func() (*client, error)
	retry     time.Duration // between connection attempts

	objects api.ManagedObjects
	synced  bool // objects holds a first reply: later syncs print differences
}

func (m *monitorState) handle(s *godbus.Signal) error {
	now := time.Now()
	switch s.Name {
	case api.ObjectManagerInterface + ".InterfacesAdded":
		var path godbus.ObjectPath
		var ifaces map[string]api.Properties
		if godbus.Store(s.Body, &path, &ifaces) != nil {
			return nil
		}
		if m.objects[path] == nil {
			m.objects[path] = map[string]api.Properties{}
		}
		for iface, p := range ifaces {
			m.objects[path][iface] = p
			if kind := kindOf(iface); kind != "" {
				if err := m.emit(now, kind+"_added", path, iface, nil); err != nil {
					return err
				}
			}
		}
	case api.ObjectManagerInterface + ".InterfacesRemoved":
		var path godbus.ObjectPath
		var ifaces []string
		if godbus.Store(s.Body, &path, &ifaces) != nil {
			return nil
		}
		for _, iface := range ifaces {
			if kind := kindOf(iface); kind != "" {
				if err := m.emit(now, kind+"_removed", path, iface, nil); err != nil {
					return err
				}
			}
			delete(m.objects[path], iface)
		}
		if len(m.objects[path]) == 0 {
			delete(m.objects, path)
		}
	case api.PropertiesInterface + ".PropertiesChanged":
		var iface string
		var changed api.Properties
		var invalidated []string
		if godbus.Store(s.Body, &iface, &changed, &invalidated) != nil {
			return nil
		}
		p := m.objects[s.Path][iface]
		if p == nil {
			return nil
		}
		names := make([]string, 0, len(changed))
		for k, v := range changed {
			p[k] = v
			names = append(names, k)
		}
		sort.Strings(names)
		kind := kindOf(iface)
		if kind == "" {
			return nil
		}
		return m.emit(now, kind+"_changed", s.Path, iface, names)
	case api.JobInterface + "." + api.SignalCompleted:
		return m.emit(now, api.EventJobCompleted, s.Path, api.JobInterface, nil)
	}
	return nil
}

func kindOf(iface string) string {
	switch iface {
	case api.RegionInterface:
		return "region"
	case api.RootDecoderInterface:
		return "root_decoder"
	case api.JobInterface:
		return "job"
	case api.ManagerInterface:
		return "manager"
	}
	return ""
}

// emit prints one event with the object's current properties.
func (m *monitorState) emit(now time.Time, event string, path godbus.ObjectPath, iface string, changed []string) error {
	ev := api.Event{Time: now.Format(time.RFC3339Nano), Event: event, Object: string(path), Changed: changed}
	p := m.objects[path][iface]
	var summary string
	switch iface {
	case api.RegionInterface:
		if r, err := api.DecodeRegion(p); err == nil {
			ev.Region = &r
			summary = fmt.Sprintf("%s %s %s %s on %s gen %d", r.Region, r.Type, formatSize(r.Size), r.Lifecycle, r.RootDecoder, r.Generation)
		}
	case api.RootDecoderInterface:
		if rd, err := api.DecodeRootDecoder(p); err == nil {
			ev.RootDecoder = &rd
			summary = fmt.Sprintf("%s frozen=%s queue=%d", rd.Decoder, yesNo(rd.Frozen), rd.QueueDepth)
		}
	case api.JobInterface:
		if j, err := api.DecodeJob(p); err == nil {
			ev.Job = &j
			summary = fmt.Sprintf("%s %s", j.Operation, strings.Join(j.Objects, ","))
			if j.Finished {
				summary += map[bool]string{true: " succeeded", false: " failed: " + j.ErrorName + ": " + j.Message}[j.Success]
			}
		}
	}
	if m.asJSON {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(m.out, "%s\n", b)
		return err
	}
	line := now.Format("15:04:05.000") + " " + event + " " + summary
	if len(changed) > 0 {
		var kv []string
		for _, name := range changed {
			kv = append(kv, name+"="+fmt.Sprint(p[name].Value()))
		}
		line += " (" + strings.Join(kv, " ") + ")"
	}
	_, err := fmt.Fprintln(m.out, line)
	return err
}
