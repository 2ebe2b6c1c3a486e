package main

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestForeignRegionSettlesOnTheBusWithoutPolling: a region another tool
// makes behind the daemon's back (created, then left alone) is shown
// Settled on the bus once the settle window has passed since its last
// change, with no event after that change and nothing polling: the
// service's timer armed on the engine's SettleCheckAt. The STATUS= line
// counts the region from its event, with no ticker either.
//
// Mutations: make settleCheckAtLocked return zero → Settled stays false on
// the bus; drop the events case of followStatus → the STATUS= line never
// counts the new region.
func TestForeignRegionSettlesOnTheBusWithoutPolling(t *testing.T) {
	const window = 400 * time.Millisecond
	dbustest.Start(t)
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", notify.LocalAddr().String())
	status := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := notify.ReadFromUnix(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if s, ok := strings.CutPrefix(line, "STATUS="); ok {
					select {
					case status <- s:
					default:
					}
				}
			}
		}
	}()

	d, rec := testDaemon(t, nil)
	d.live.cur.SettleWindow = window
	d.live.cur.RescanInterval = 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	select {
	case <-rec.ready:
	case err := <-errc:
		t.Fatalf("daemon ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready after 30 s")
	}
	regionsBefore := len(d.eng.Regions())

	client, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.AddMatchSignal(dbus.WithMatchSender(api.BusName)); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 256)
	client.Signal(sigs)

	root := d.eng.RootDecoders()[0].Name
	name, err := d.fs.NextRegionName(root, "pmem")
	if err != nil {
		t.Fatal(err)
	}
	attr, err := sysfs.DeviceAttr(root, "create_pmem_region")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.fs.Write(attr, name); err != nil {
		t.Fatal(err)
	}
	path, _ := api.RegionPath(name)
	var lastChange, settledAt time.Time
	timeout := time.After(20 * time.Second)
	for settledAt.IsZero() {
		select {
		case s := <-sigs:
			switch {
			case s.Name == api.ObjectManagerInterface+".InterfacesAdded" && len(s.Body) == 2 && s.Body[0] == path:
				lastChange = time.Now()
				props := s.Body[1].(map[string]map[string]dbus.Variant)[api.RegionInterface]
				if props[api.PropSettled].Value() == true {
					t.Fatal("a region another tool just created was exported Settled")
				}
			case s.Name == api.PropertiesInterface+".PropertiesChanged" && s.Path == path:
				if v, ok := s.Body[1].(map[string]dbus.Variant)[api.PropSettled]; ok && v.Value() == true {
					settledAt = time.Now()
				} else {
					lastChange = time.Now()
				}
			}
		case <-timeout:
			t.Fatalf("%s: not Settled on the bus within 20 s (settle window %v)", name, window)
		}
	}
	if lastChange.IsZero() {
		t.Fatal("Settled came before the region was added")
	}
	if quiet := settledAt.Sub(lastChange); quiet < window*9/10 {
		t.Errorf("Settled %v after the region's last change, before the settle window (%v)", quiet, window)
	}

	want := ", " + strconv.Itoa(regionsBefore+1) + " regions"
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-status:
			if strings.Contains(s, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no STATUS= line with %q", want)
		}
	}
}
