package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
)

func newMonitorCommand() *cobra.Command {
	var asJSON bool
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
in "changed" and carry the whole object. monitor exits with status 7 when
the daemon leaves the bus.`,
		Example: "  cxlregionctl monitor\n  cxlregionctl monitor --json | jq -c 'select(.event == \"region_removed\")'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			return monitor(ctx, c, cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return cmd
}

// monitor subscribes first, then reads the managed objects, so no change
// falls between the two; PropertiesChanged carries only what changed, so
// the objects are kept to print them whole.
func monitor(ctx context.Context, c *client, out io.Writer, asJSON bool) error {
	for _, m := range [][]godbus.MatchOption{
		{godbus.WithMatchSender(api.BusName)},
		{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, api.BusName)},
	} {
		if err := c.conn.AddMatchSignalContext(ctx, m...); err != nil {
			return &exitError{code: api.ExitUnreachable, err: fmt.Errorf("monitor: subscribe: %w", err)}
		}
	}
	signals := make(chan *godbus.Signal, 1024)
	c.conn.Signal(signals)
	defer c.conn.RemoveSignal(signals)
	objs, err := c.managedObjects(ctx)
	if err != nil {
		return err
	}
	m := &monitorState{objects: objs, out: out, asJSON: asJSON}
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-signals:
			if !ok {
				return &exitError{code: api.ExitUnreachable, err: fmt.Errorf("monitor: the bus connection closed")}
			}
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" {
				if len(s.Body) == 3 && s.Body[2] == "" {
					return &exitError{code: api.ExitUnreachable, err: fmt.Errorf("monitor: cxlregiond left the bus")}
				}
				continue
			}
			if err := m.handle(s); err != nil {
				return err
			}
		}
	}
}

type monitorState struct {
	objects api.ManagedObjects
	out     io.Writer
	asJSON  bool
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
