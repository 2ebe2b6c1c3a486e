package uevent

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkAccept is issue 14's uevent parser row: the receive path after
// the socket read (sender check, scan, SEQNUM check, filter, and for a
// delivered message the Event) over every message of the real-kernel
// captures in testdata/, 6.1 and 6.12. msgs/cpu-s is messages per second
// of CPU time (the process's, from getrusage: the benchmark runs on one
// goroutine, so on a shared machine this is per core whatever the load),
// msgs/s per wall second beside it; the filtered case
// runs only the captured messages DefaultFilter drops (module, driver and
// wakeup events) and its allocs/op must be 0.
//
// SEQNUM continuity is reset before each message: the captures replayed in
// a loop are not one kernel's sequence, and a gap would make a resync
// error that a live stream does not have per message.
func BenchmarkAccept(b *testing.B) {
	var all, dropped [][]byte
	for _, f := range captureFiles(b) {
		for _, c := range loadCapture(b, f) {
			msg := c.bytes()
			all = append(all, msg)
			s := newStream(DefaultFilter, discardLogger())
			if _, ok, err := s.accept(msg, kernel); err != nil {
				b.Fatalf("%s: %v", c.where, err)
			} else if !ok {
				dropped = append(dropped, msg)
			}
		}
	}
	if len(dropped) == 0 || len(dropped) == len(all) {
		b.Fatalf("captures: %d of %d dropped by the filter; want some of each", len(dropped), len(all))
	}
	for _, c := range []struct {
		name string
		msgs [][]byte
	}{
		{"captured", all},
		{"filtered", dropped},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newStream(DefaultFilter, discardLogger())
			b.ReportAllocs()
			i := 0
			cpu0 := cpuTime(b)
			start := time.Now()
			for b.Loop() {
				s.haveSeq = false
				if _, _, err := s.accept(c.msgs[i], kernel); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(c.msgs) {
					i = 0
				}
			}
			wall := time.Since(start)
			b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "msgs/cpu-s")
			b.ReportMetric(float64(b.N)/wall.Seconds(), "msgs/s")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
