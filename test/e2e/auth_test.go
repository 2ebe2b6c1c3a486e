package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

var none = map[string]godbus.Variant{}

func sizeOpt(n uint64) map[string]godbus.Variant {
	return map[string]godbus.Variant{api.OptSize: godbus.MakeVariant(n)}
}

// clientMain reads the managed objects and calls every mutating method,
// printing "name<TAB>result" lines ("ok" or the D-Bus error name).
func clientMain() int {
	conn, err := godbus.ConnectSystemBus()
	if err != nil {
		fmt.Println("connect\t" + err.Error())
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var objs api.ManagedObjects
	err = conn.Object(api.BusName, api.RootPath).CallWithContext(ctx, api.ObjectManagerInterface+".GetManagedObjects", 0).Store(&objs)
	fmt.Printf("GetManagedObjects\t%s %d\n", dbustest.ErrName(err), len(objs))
	var size godbus.Variant
	size, err = conn.Object(api.BusName, api.RegionsPath+"/region0").GetProperty(api.RegionInterface + "." + api.PropSize)
	fmt.Printf("Get Size\t%s %v\n", dbustest.ErrName(err), size.Value())
	for _, c := range dbustest.MutatingCalls() {
		call := conn.Object(api.BusName, c.Path).CallWithContext(ctx, c.Method, 0, c.Args...)
		fmt.Println(c.Name + "\t" + dbustest.ErrName(call.Err))
	}
	return 0
}

// An unprivileged caller reads everything and changes nothing: every
// mutating method, called directly and through the CLI, is AccessDenied,
// and no write reaches the kernel.
func TestNonRootCanReadButNotMutate(t *testing.T) {
	setpriv := requireRoot(t)
	d := startDaemon(t)
	d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M")
	writes := d.writes("")

	// Directly over D-Bus.
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", filepath.Join(binDir, "e2e-client"))
	cmd.Env = append(d.env(), clientEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		res[k] = v
	}
	if !strings.HasPrefix(res["GetManagedObjects"], "ok ") || res["Get Size"] != "ok 268435456" {
		t.Errorf("reads as nobody: %q", out)
	}
	for _, c := range dbustest.MutatingCalls() {
		if res[c.Name] != api.ErrorAccessDenied {
			t.Errorf("%s as nobody: %q, want %s", c.Name, res[c.Name], api.ErrorAccessDenied)
		}
	}

	// Through the CLI.
	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"info", "region0"}, {"status"}} {
		if r := d.ctlAsNobody(setpriv, args...); r.code != 0 {
			t.Errorf("%v as nobody: exit %d: %s", args, r.code, r.stderr)
		}
	}
	for _, args := range [][]string{
		{"create", "--decoder", "decoder0.0", "--size", "256M"},
		{"delete", "region0"},
		{"disable", "region0"},
		{"enable", "region0"},
	} {
		r := d.ctlAsNobody(setpriv, args...)
		if r.code != api.ExitAccessDenied || !strings.Contains(r.stderr, "uid 65534") {
			t.Errorf("%v as nobody: exit %d, stderr %q; want %d naming the uid", args, r.code, r.stderr, api.ExitAccessDenied)
		}
	}
	if got := d.writes(""); got != writes {
		t.Errorf("the simulated kernel received %d writes from refused calls", got-writes)
	}
	if r := checkRegion(t, []byte(d.mustCtl("info", "region0", "--json"))); r.Lifecycle != api.StateEnabled {
		t.Errorf("region0 changed: %+v", r)
	}
}

// Bad arguments sent straight over D-Bus are refused with InvalidArgument
// and a message; nothing is written and the daemon keeps serving.
func TestBadArgumentsOverDBus(t *testing.T) {
	d := startDaemon(t)
	used := checkRegion(t, []byte(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M", "--json")))
	conn := d.conn()
	writes := d.writes("")
	long := strings.Repeat("x", 4096)
	size := uint64(256 << 20)
	opt := func(kv ...any) map[string]godbus.Variant {
		m := map[string]godbus.Variant{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = godbus.MakeVariant(kv[i+1])
		}
		return m
	}
	create := api.ManagerInterface + ".CreateRegion"
	del := api.ManagerInterface + ".DeleteRegion"
	tests := []struct {
		name   string
		path   godbus.ObjectPath
		method string
		args   []any
	}{
		{"decoder ../decoder0.0", api.ManagerPath, create, []any{"../decoder0.0", sizeOpt(size)}},
		{"decoder with newline", api.ManagerPath, create, []any{"decoder0.0\n", sizeOpt(size)}},
		{"target memdev mem01", api.ManagerPath, create, []any{"", opt(api.OptSize, size, api.OptTargets, []string{"mem01"})}},
		{"decoder 4 KiB", api.ManagerPath, create, []any{long, sizeOpt(size)}},
		{"size 0", api.ManagerPath, create, []any{"decoder0.0", sizeOpt(0)}},
		{"size unaligned", api.ManagerPath, create, []any{"decoder0.0", sizeOpt(size + 512)}},
		{"size huge", api.ManagerPath, create, []any{"decoder0.0", sizeOpt(1 << 62)}},
		{"target endpoint port", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptTargets, []string{"endpoint3"})}},
		{"uuid malformed", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptUUID, "1234")}},
		{"uuid uppercase garbage", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptUUID, "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ")}},
		{"uuid duplicate", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptUUID, used.UUID)}},
		{"ways 0", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptWays, uint32(0))}},
		{"ways 3", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, 3*size, api.OptWays, uint32(3))}},
		{"ways 17", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, 17*size, api.OptWays, uint32(17))}},
		{"ways as int32", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptWays, int32(1))}},
		{"size as string", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, "256M")}},
		{"timeout as uint32", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptTimeout, uint32(5))}},
		{"unknown option", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, "force", true)}},
		{"target traversal", api.ManagerPath, create, []any{"decoder0.0", opt(api.OptSize, size, api.OptTargets, []string{"../../decoder3.0"})}},
		{"wrong signature", api.ManagerPath, create, []any{uint32(1), "decoder0.0"}},
		{"delete ../region0", api.ManagerPath, del, []any{"../region0", none}},
		{"delete region0 newline", api.ManagerPath, del, []any{"region0\n", none}},
		{"delete empty", api.ManagerPath, del, []any{"", none}},
		{"delete 4 KiB", api.ManagerPath, del, []any{long, none}},
		{"delete generation 0", api.ManagerPath, del, []any{"region0", opt(api.OptGeneration, uint64(0))}},
		{"delete generation as int", api.ManagerPath, del, []any{"region0", opt(api.OptGeneration, int32(1))}},
		{"delete unknown option", api.ManagerPath, del, []any{"region0", opt("recursive", true)}},
		{"region enable unknown option", api.RegionsPath + "/region0", api.RegionInterface + ".Enable", []any{opt(api.OptSize, size)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := conn.Object(api.BusName, tt.path).CallWithContext(ctx, tt.method, 0, tt.args...).Err
			var de godbus.Error
			if !errors.As(err, &de) || de.Name != api.ErrorInvalidArgument {
				t.Fatalf("err = %v (%s), want %s", err, dbustest.ErrName(err), api.ErrorInvalidArgument)
			}
			if msg := de.Error(); msg == "" || msg == de.Name || len(msg) > 512 {
				t.Errorf("message %q: want a short explanation", msg)
			}
		})
	}
	if got := d.writes(""); got != writes {
		t.Errorf("bad arguments caused %d writes", got-writes)
	}
	// Still serving.
	if list := checkRegionList(t, []byte(d.mustCtl("list", "--json"))); len(list) != 1 {
		t.Errorf("after the bad calls: %+v", list)
	}
	// (The kernel's region ids are global and each root decoder holds one
	// in advance, so the next name is not simply region1.)
	if name := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M")); !devname.IsRegion(name) || name == used.Region {
		t.Errorf("create after the bad calls printed %q", name)
	}
}
