package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// clientEnv makes the test binary act as a D-Bus client (see clientMain):
// the tests re-run it under setpriv to call the service as another user.
const clientEnv = "CXLREGION_DBUS_TEST_CLIENT"

func TestMain(m *testing.M) {
	if os.Getenv(clientEnv) != "" {
		os.Exit(clientMain())
	}
	os.Exit(m.Run())
}

// noOpts is an empty options dictionary (a{sv}).
var noOpts = map[string]dbus.Variant{}

// clientMain calls every mutating method and prints "name<TAB>error name"
// per call ("ok" on success); first it reads the managed objects, which
// anyone may.
func clientMain() int {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Println("connect\t" + err.Error())
		return 1
	}
	defer conn.Close()
	var objs api.ManagedObjects
	if err := conn.Object(api.BusName, api.RootPath).Call(api.ObjectManagerInterface+".GetManagedObjects", 0).Store(&objs); err != nil {
		fmt.Println("GetManagedObjects\t" + dbustest.ErrName(err))
	} else {
		fmt.Printf("GetManagedObjects\tok %d\n", len(objs))
	}
	for _, c := range dbustest.MutatingCalls() {
		call := conn.Object(api.BusName, c.Path).Call(c.Method, 0, c.Args...)
		fmt.Println(c.Name + "\t" + dbustest.ErrName(call.Err))
	}
	return 0
}

// runAsNobody runs clientMain as uid/gid 65534 and returns its lines.
func runAsNobody(t *testing.T) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to uid 65534")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not found")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The go test binary lives in a 0700 directory; nobody needs a copy.
	dir, err := os.MkdirTemp("", "dbus-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	copyFile(t, self, bin)
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", bin)
	cmd.Env = append(os.Environ(), clientEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, result, _ := strings.Cut(line, "\t")
		res[name] = result
	}
	return res
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// harness is a service on a private bus with a client connection.
type harness struct {
	eng    *fakeEngine
	svc    *Service
	client *dbus.Conn
	cancel context.CancelFunc
	served chan error
}

func startService(t *testing.T, eng *fakeEngine, tweak func(*Config)) *harness {
	t.Helper()
	dbustest.Start(t)
	cfg := Config{Engine: eng, Version: "test", Simulated: true, JobGrace: 200 * time.Millisecond,
		ShutdownGrace: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(&failOnError{t: t})
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithHandler(svc))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{eng: eng, svc: svc, cancel: cancel, served: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { h.served <- svc.Serve(ctx, conn, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-h.served:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready within 10s")
	}
	h.client, err = dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stop(t)
		_ = h.client.Close()
		_ = conn.Close()
	})
	return h
}

// failOnError fails the test on every record at level Error: the service
// logs at that level only what is a bug of its own (a property that
// drifted from the XML).
type failOnError struct {
	t     *testing.T
	attrs []slog.Attr
}

func (f *failOnError) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (f *failOnError) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	f.t.Errorf("service logged an error: %s", b.String())
	return nil
}
func (f *failOnError) WithAttrs(as []slog.Attr) slog.Handler {
	return &failOnError{t: f.t, attrs: append(append([]slog.Attr(nil), f.attrs...), as...)}
}
func (f *failOnError) WithGroup(string) slog.Handler { return f }

func (h *harness) stop(t *testing.T) {
	h.cancel()
	select {
	case err := <-h.served:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
		h.served <- nil
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return within 10s of cancel")
	}
}

func (h *harness) call(path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.client.Object(api.BusName, path).CallWithContext(ctx, method, 0, args...)
}

func (h *harness) managed(t *testing.T) api.ManagedObjects {
	t.Helper()
	var objs api.ManagedObjects
	if err := h.call(api.RootPath, api.ObjectManagerInterface+".GetManagedObjects").Store(&objs); err != nil {
		t.Fatal(err)
	}
	return objs
}

// signals subscribes to every signal the service emits.
func (h *harness) signals(t *testing.T) <-chan *dbus.Signal {
	t.Helper()
	if err := h.client.AddMatchSignal(dbus.WithMatchSender(api.BusName)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 256)
	h.client.Signal(ch)
	return ch
}

// waitSignal returns the first signal matching name (and path, if set).
func waitSignal(t *testing.T, ch <-chan *dbus.Signal, name string, path dbus.ObjectPath) *dbus.Signal {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.Name == name && (path == "" || s.Path == path) {
				return s
			}
		case <-timeout:
			t.Fatalf("no %s signal on %s within 10s", name, path)
			return nil
		}
	}
}
