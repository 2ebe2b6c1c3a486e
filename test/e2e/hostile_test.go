package e2e

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// hostileStrings go into every string argument and string option: control
// characters, terminal escapes, path traversal, absolute sysfs paths, names
// the kernel never prints, and over-long strings. (D-Bus itself refuses NUL
// and invalid UTF-8: the bus disconnects such a sender before the daemon
// sees anything.)
func hostileStrings() []string {
	return []string{
		"", "\x01", "\x7f", "region0\n", "region0\r", "\tregion0", "region0\x1b[2J", "\x1b]0;owned\x07",
		"../region0", "./region0", "region0/../region1", "../../../../sys/bus/cxl/devices/decoder0.0/delete_region",
		"/sys/bus/cxl/devices/region0", "/etc/passwd", "region0/", "region0 ", " region0", "region-1", "region+1",
		"region01", "region4294967296", "region99999999999999999999", "decoder0.0/../decoder0.0", "decoder00.0",
		"decoder0.0\n", "decoder-1.0", "decoder0", "Region0", "régión0", "region0\u202e", "%s%n%x",
		"$(reboot)", "`id`", "region0;echo", "*", "region*", "decoder0.*",
		strings.Repeat("x", 4096), strings.Repeat("region0", 10000),
	}
}

// everyType is one value of each D-Bus type a variant can carry.
func everyType() []any {
	return []any{
		byte(1), true, int16(-1), uint16(1), int32(-1), uint32(1), int64(-1), uint64(1), 1.5, "s",
		godbus.ObjectPath("/io/github/cxlregion1"), godbus.Signature{}, []string{"decoder3.0"}, []byte{1},
		[]uint32{1}, map[string]godbus.Variant{"size": godbus.MakeVariant(uint64(256 << 20))},
		godbus.MakeVariant(uint64(256 << 20)), struct {
			A string
			B uint32
		}{"a", 1},
	}
}

// hostileCall is one call and the typed errors that may answer it.
type hostileCall struct {
	what   string
	path   godbus.ObjectPath
	method string
	args   []any
	allow  []string // typed errors accepted; the first is the expected one
}

// resources are a process's figures the hostile and soak tests compare
// before and after.
type resources struct {
	rssKB      int
	fds        int
	goroutines int
}

func (r resources) String() string {
	return "rss " + strconv.Itoa(r.rssKB) + " kB, " + strconv.Itoa(r.goroutines) + " goroutines, " + strconv.Itoa(r.fds) + " fds"
}

// resources reads the daemon's RSS and descriptors from /proc and its
// goroutines from its metrics.
func (d *daemon) resources() resources {
	d.t.Helper()
	pid := strconv.Itoa(d.cmd.Process.Pid)
	var r resources
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			r.rssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		d.t.Fatal(err)
	}
	r.fds = len(fds)
	r.goroutines = int(d.metric("go_goroutines"))
	return r
}

// settledResources waits a moment for the daemon to finish what the last
// calls started, then reads its resources.
func (d *daemon) settledResources() resources {
	d.t.Helper()
	var r resources
	for range 20 {
		r = d.resources()
		time.Sleep(100 * time.Millisecond)
		if next := d.resources(); next.goroutines == r.goroutines && next.fds == r.fds {
			return next
		}
	}
	return r
}

// TestHostileCallers sends every method, over the bus directly, hostile
// strings in every string argument and option, every wrong D-Bus type for
// every option, unknown options, numbers and counts at their limits,
// duplicate uuids and decoders of the wrong kind; then one client's flood
// and a thousand clients connecting at once. Each call must be answered
// with one of the API's typed errors, nothing may reach the simulated
// kernel, the daemon must keep serving, and its memory, goroutines and
// descriptors must come back to what they were (measured before and after).
func TestHostileCallers(t *testing.T) {
	d := startDaemon(t)
	used := checkRegion(t, []byte(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M", "--json")))
	endpoint := used.Mappings[0].Decoder
	conn := d.conn()
	before := d.settledResources()
	writes := d.writes("")

	size := uint64(256 << 20)
	opt := func(kv ...any) map[string]godbus.Variant {
		m := map[string]godbus.Variant{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = godbus.MakeVariant(kv[i+1])
		}
		return m
	}
	regionPath := godbus.ObjectPath(api.RegionsPath + "/" + used.Region)
	rootPath, _ := api.RootDecoderPath("decoder0.0")
	create := api.ManagerInterface + ".CreateRegion"
	del := api.ManagerInterface + ".DeleteRegion"
	invalid := []string{api.ErrorInvalidArgument}
	// Every method with its options map, given the options to send.
	methods := []struct {
		name    string
		path    godbus.ObjectPath
		method  string
		args    func(map[string]godbus.Variant) []any
		allowed []string
	}{
		{"Manager.CreateRegion", api.ManagerPath, create, func(o map[string]godbus.Variant) []any { return []any{"decoder0.0", o} }, api.CreateOptions},
		{"RootDecoder.CreateRegion", rootPath, api.RootDecoderInterface + ".CreateRegion", func(o map[string]godbus.Variant) []any { return []any{o} }, api.CreateOptions},
		{"Manager.DeleteRegion", api.ManagerPath, del, func(o map[string]godbus.Variant) []any { return []any{used.Region, o} }, api.DeleteOptions},
		{"Region.Delete", regionPath, api.RegionInterface + ".Delete", func(o map[string]godbus.Variant) []any { return []any{o} }, api.DeleteOptions},
		{"Region.Enable", regionPath, api.RegionInterface + ".Enable", func(o map[string]godbus.Variant) []any { return []any{o} }, api.BindOptions},
		{"Region.Disable", regionPath, api.RegionInterface + ".Disable", func(o map[string]godbus.Variant) []any { return []any{o} }, api.BindOptions},
	}

	var calls []hostileCall
	add := func(what string, path godbus.ObjectPath, method string, allow []string, args ...any) {
		calls = append(calls, hostileCall{what, path, method, args, allow})
	}
	// Hostile strings in every string argument and string option.
	for _, s := range hostileStrings() {
		q := strconv.QuoteToASCII(s)
		if len(q) > 40 {
			q = q[:40] + "…"
		}
		if s != "" { // an empty root decoder is the default: the first that can hold the region
			add("CreateRegion root "+q, api.ManagerPath, create, invalid, s, opt(api.OptSize, size))
		}
		// A name the kernel could print but has not is NotFound.
		add("DeleteRegion name "+q, api.ManagerPath, del, []string{api.ErrorInvalidArgument, api.ErrorNotFound}, s, opt())
		add("CreateRegion type "+q, api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptType, s))
		add("CreateRegion uuid "+q, api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptUUID, s))
		add("CreateRegion targets "+q, api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptTargets, []string{s}))
		add("CreateRegion unknown option "+q, api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, s, true))
	}
	// Every wrong D-Bus type for every option of every method, and
	// unknown options.
	for _, m := range methods {
		for _, key := range m.allowed {
			for _, v := range everyType() {
				if godbus.SignatureOf(v).String() == api.OptionTypes[key] {
					continue
				}
				o := opt(key, v)
				if strings.Contains(m.method, "CreateRegion") && key != api.OptSize {
					o[api.OptSize] = godbus.MakeVariant(size)
				}
				add(m.name+" "+key+" as "+godbus.SignatureOf(v).String(), m.path, m.method, invalid, m.args(o)...)
			}
		}
		for _, key := range []string{"force", "Size", "size ", "timeouts", api.OptUUID + "s", strings.Repeat("k", 1000)} {
			add(m.name+" unknown "+strconv.Quote(key[:min(len(key), 20)]), m.path, m.method, invalid, m.args(opt(key, true))...)
		}
	}
	// Numbers and counts at their limits.
	for _, n := range []uint64{0, 1, size - 1, size + 1, 1 << 62, math.MaxInt64, 1 << 63, math.MaxUint64} {
		add("size "+strconv.FormatUint(n, 10), api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, n))
	}
	for _, n := range []uint32{0, 5, 7, 17, 1 << 31, math.MaxUint32} {
		add("ways "+strconv.FormatUint(uint64(n), 10), api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size*16, api.OptWays, n))
		add("granularity "+strconv.FormatUint(uint64(n), 10), api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptGranularity, n))
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 0, math.Copysign(0, -1), 5e-324, 1e-12, api.MaxTimeout.Seconds() + 1, math.MaxFloat64} {
		for _, m := range methods {
			o := opt(api.OptTimeout, f)
			if strings.Contains(m.method, "CreateRegion") {
				o[api.OptSize] = godbus.MakeVariant(size)
			}
			add(m.name+" timeout "+strconv.FormatFloat(f, 'g', -1, 64), m.path, m.method, invalid, m.args(o)...)
		}
	}
	add("generation 0", api.ManagerPath, del, invalid, used.Region, opt(api.OptGeneration, uint64(0)))
	for _, g := range []uint64{used.Generation + 1, math.MaxUint64} {
		add("generation "+strconv.FormatUint(g, 10), api.ManagerPath, del, []string{api.ErrorNotFound}, used.Region, opt(api.OptGeneration, g))
		add("Region.Delete generation "+strconv.FormatUint(g, 10), regionPath, api.RegionInterface+".Delete", []string{api.ErrorNotFound}, opt(api.OptGeneration, g))
	}
	for _, n := range []int{17, 1000, 10000} {
		targets := make([]string, n)
		for i := range targets {
			targets[i] = "decoder" + strconv.Itoa(3+i) + ".0"
		}
		add("targets "+strconv.Itoa(n), api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptTargets, targets))
	}
	add("targets repeated", api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, 2*size, api.OptTargets, []string{endpoint, endpoint}))
	add("targets of a 2-way region for 4 ways", api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, 4*size, api.OptWays, uint32(4), api.OptTargets, []string{endpoint, "decoder4.0"}))
	// Duplicate uuids, decoders of the wrong kind.
	add("uuid of an existing region", api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptUUID, used.UUID))
	add("uuid of an existing region, upper case", api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptUUID, strings.ToUpper(used.UUID)))
	add("uuid null", api.ManagerPath, create, invalid, "decoder0.0", opt(api.OptSize, size, api.OptUUID, "00000000-0000-0000-0000-000000000000"))
	add("uuid on a ram region", api.ManagerPath, create, invalid, "decoder0.3", opt(api.OptSize, size, api.OptType, "ram", api.OptUUID, "a6d0c8ec-a2fb-4202-a662-84d58654eeef"))
	wrongKind := []string{api.ErrorInvalidArgument, api.ErrorNotFound}
	add("root decoder that is an endpoint decoder", api.ManagerPath, create, wrongKind, endpoint, opt(api.OptSize, size))
	add("root decoder that is a switch decoder", api.ManagerPath, create, wrongKind, "decoder1.0", opt(api.OptSize, size))
	add("root decoder that does not exist", api.ManagerPath, create, wrongKind, "decoder0.99", opt(api.OptSize, size))
	add("ram region on a pmem-only window", api.ManagerPath, create, wrongKind, "decoder0.0", opt(api.OptSize, size, api.OptType, "ram"))
	add("target that is the root decoder", api.ManagerPath, create, wrongKind, "decoder0.0", opt(api.OptSize, size, api.OptTargets, []string{"decoder0.0"}))
	add("target that is a switch decoder", api.ManagerPath, create, wrongKind, "decoder0.0", opt(api.OptSize, size, api.OptTargets, []string{"decoder1.0"}))
	add("target in use by another region", api.ManagerPath, create, append(wrongKind, api.ErrorBusy), "decoder0.0", opt(api.OptSize, size, api.OptTargets, []string{endpoint}))
	add("delete of a root decoder's name", api.ManagerPath, del, wrongKind, "decoder0.0", opt())
	add("delete of a region that does not exist", api.ManagerPath, del, []string{api.ErrorNotFound}, "region2147483647", opt())
	// Wrong method signatures.
	add("CreateRegion(u, s)", api.ManagerPath, create, invalid, uint32(1), "decoder0.0")
	add("CreateRegion(s)", api.ManagerPath, create, invalid, "decoder0.0")
	add("DeleteRegion(s, a{sv}, s)", api.ManagerPath, del, invalid, used.Region, opt(), "extra")
	add("Region.Enable(s)", regionPath, api.RegionInterface+".Enable", invalid, "now")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range calls {
		err := conn.Object(api.BusName, c.path).CallWithContext(ctx, c.method, 0, c.args...).Err
		got := dbustest.ErrName(err)
		if !slices.Contains(c.allow, got) {
			t.Errorf("%s: %s, want %v", c.what, got, c.allow)
			continue
		}
		var de godbus.Error
		if errors.As(err, &de) {
			if msg := de.Error(); msg == "" || len(msg) > 1024 || strings.ContainsAny(msg, "\x1b\x07") {
				t.Errorf("%s: message %q: want a short one, without the caller's control characters", c.what, msg)
			}
		}
	}

	// One client's flood: 10,000 calls a second offered, at most 120 in
	// flight (the bus's own per-connection reply limit is 128), each
	// answered.
	const floodFor = 2 * time.Second
	var answered, wrong atomic.Int64
	inflight := make(chan struct{}, 120)
	var flood sync.WaitGroup
	floodStart := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	for time.Since(floodStart) < floodFor {
		<-tick.C
		for range 10 { // 10 per millisecond
			inflight <- struct{}{}
			sent++
			call := conn.Object(api.BusName, api.ManagerPath).Go(del, 0, make(chan *godbus.Call, 1), "../region0", opt())
			flood.Go(func() {
				defer func() { <-inflight }()
				select {
				case c := <-call.Done:
					if dbustest.ErrName(c.Err) != api.ErrorInvalidArgument {
						wrong.Add(1)
					}
					answered.Add(1)
				case <-ctx.Done():
				}
			})
		}
	}
	tick.Stop()
	flood.Wait()
	floodTime := time.Since(floodStart)
	if answered.Load() != int64(sent) || wrong.Load() != 0 {
		t.Errorf("flood: %d sent, %d answered, %d not InvalidArgument", sent, answered.Load(), wrong.Load())
	}

	// A thousand clients connecting at once, each with one call.
	const clients = 1000
	var clientErrs atomic.Int64
	var firstErr atomic.Value
	var crowd sync.WaitGroup
	crowdStart := time.Now()
	gate := make(chan struct{})
	for range clients {
		crowd.Go(func() {
			<-gate
			c, err := godbus.Connect(d.bus)
			if err == nil {
				err = c.Object(api.BusName, api.ManagerPath).CallWithContext(ctx, del, 0, "region0/../region1", opt()).Err
				_ = c.Close()
				if dbustest.ErrName(err) == api.ErrorInvalidArgument {
					return
				}
			}
			clientErrs.Add(1)
			firstErr.CompareAndSwap(nil, dbustest.ErrName(err))
		})
	}
	close(gate)
	crowd.Wait()
	crowdTime := time.Since(crowdStart)
	if n := clientErrs.Load(); n != 0 {
		t.Errorf("%d of %d concurrent clients did not get InvalidArgument (first: %v)", n, clients, firstErr.Load())
	}

	if got := d.writes(""); got != writes {
		t.Errorf("hostile calls caused %d writes to the simulated kernel", got-writes)
	}
	after := d.settledResources()
	t.Logf("hostile: %d calls, each answered with a typed error; flood: %d calls in %s (%.0f/s); %d clients at once in %s; 0 writes",
		len(calls), sent, floodTime.Round(time.Millisecond), float64(sent)/floodTime.Seconds(), clients, crowdTime.Round(time.Millisecond))
	t.Logf("daemon before: %s; after: %s", before, after)
	if after.goroutines > before.goroutines+10 || after.fds > before.fds+5 || after.rssKB > before.rssKB+64*1024 {
		t.Errorf("resources grew: before %s, after %s", before, after)
	}
	// Still serving, and still writing what it should.
	if list := checkRegionList(t, []byte(d.mustCtl("list", "--json"))); len(list) != 1 {
		t.Errorf("after the hostile calls: %+v", list)
	}
	d.mustCtl("delete", used.Region)
	if warn, bug := d.warnings(); warn != 0 || bug != 0 {
		t.Errorf("simulated kernel: %d WARNING, %d BUG", warn, bug)
	}
}
