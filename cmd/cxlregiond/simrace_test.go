package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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
