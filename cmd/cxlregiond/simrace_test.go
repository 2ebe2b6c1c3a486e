package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// sim-race shows the race the daemon prevents: every raw write reaches the
// simulated kernel, and overlapping deletes print WARNINGs. A wide delete
// window makes the overlap certain even on a loaded machine.
func TestSimRaceCountsWarnings(t *testing.T) {
	var out bytes.Buffer
	o := simRaceOptions{writers: 20, rootDecoder: "decoder0.0", topology: "default", profile: "6.12", deleteDelay: 20 * time.Millisecond}
	if err := runSimRace(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "delete_region writes reaching the kernel: 20\n") {
		t.Errorf("not every raw write reached the kernel:\n%s", text)
	}
	m := regexp.MustCompile(`kernel WARNING: (\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no WARNING count:\n%s", text)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("20 overlapping raw deletes printed no WARNING:\n%s", text)
	}
}

// An engine that fails its first scan ends createForRace with the error
// and leaves no goroutine. Mutation: take the engine's result from a
// channel and wait on that channel again in the deferred stop (the old
// code) → the call never returns.
func TestCreateForRaceEngineFailsBeforeReady(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	errc := make(chan error, 1)
	go func() {
		// An empty tree: no bus/cxl, so the engine's first scan fails.
		_, err := createForRace(context.Background(), sysfs.Open(t.TempDir()), nil, t.TempDir(), simRaceOptions{rootDecoder: "decoder0.0"})
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "engine:") {
			t.Errorf("createForRace = %v, want the engine's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("createForRace did not return after its engine failed")
	}
}
