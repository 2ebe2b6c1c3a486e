package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestServeListener(t *testing.T) {
	m := New(Options{Version: "v9.9.9"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- m.ServeListener(ctx, ln) }()

	url := "http://" + ln.Addr().String()
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/metrics", http.StatusOK, `cxlregiond_build_info{goversion="`},
		{"/metrics", http.StatusOK, `version="v9.9.9"} 1`},
		{"/metrics", http.StatusOK, "process_start_time_seconds"},
		{"/metrics", http.StatusOK, "go_goroutines"},
		{"/", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		resp, err := http.Get(url + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tt.wantStatus {
			t.Errorf("GET %s: status %d, want %d", tt.path, resp.StatusCode, tt.wantStatus)
		}
		if !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
		}
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeListener after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after its context ended")
	}
	if _, err := http.Get(url + "/metrics"); err == nil {
		t.Error("listener still answers after shutdown")
	}
}

func TestServeReportsListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = New(Options{}).Serve(t.Context(), busy.Addr().String())
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("Serve on a taken address = %v, want EADDRINUSE", err)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := New(Options{}).Serve(ctx, "127.0.0.1:0"); err != nil {
		t.Errorf("Serve = %v, want nil after its context ended", err)
	}
}
