package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

type simRaceOptions struct {
	writers     int
	rootDecoder string
	topology    string
	profile     string
	deleteDelay time.Duration
	noBind      bool
	log         string
}

// newSimRaceCommand is the contrast of the demo: the race the daemon
// prevents, on the simulator, without the daemon.
func newSimRaceCommand() *cobra.Command {
	o := simRaceOptions{}
	cmd := &cobra.Command{
		Use:   "sim-race",
		Short: "Race raw delete_region writes on a simulated kernel, without the daemon, and count the kernel WARNINGs",
		Long: `sim-race builds a simulated unpatched kernel in this process, creates one
region on it, then has --writers goroutines write that region's name to
delete_region at the same moment, as unserialized tools (echo, cxl
destroy-region) would. It prints the result of each write and the kernel
WARNING and BUG counts: what cxlregiond prevents.`,
		Example:      "  cxlregiond sim-race --writers 50",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.writers < 1 || o.writers > 10000 {
				return fmt.Errorf("--writers %d: want 1..10000", o.writers)
			}
			return runSimRace(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.writers, "writers", 50, "concurrent raw writers")
	f.StringVar(&o.rootDecoder, "decoder", "decoder0.0", "root decoder to create the region in")
	f.StringVar(&o.topology, "topology", "default", `"default", "qemu" or a topology JSON file`)
	f.StringVar(&o.profile, "profile", "6.12", "kernel to model: 6.1, 6.12 or 6.12-fixed")
	f.DurationVar(&o.deleteDelay, "delete-delay", 2*time.Millisecond, "time delete_region_store spends between finding the region and releasing it")
	f.BoolVar(&o.noBind, "no-bind", false, "leave the region unbound (committed only)")
	f.StringVar(&o.log, "sim-log", "", "also write the simulated kernel's log to this file")
	return cmd
}

func runSimRace(ctx context.Context, o simRaceOptions, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dirOpts := &daemonOptions{simulate: o.topology, simProfile: o.profile, simDeleteDelay: o.deleteDelay,
		simRegisterDelay: 50 * time.Millisecond, simAssembleTime: 200 * time.Millisecond, simLog: o.log}
	k, err := newSimulator(dirOpts)
	if err != nil {
		return err
	}
	defer k.Close()
	fs := sysfs.New(k)
	tmp, err := os.MkdirTemp("", "cxlregiond-sim-race-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The engine makes the region (the create handshake is long), then
	// stops: from here on nothing serializes the writes.
	name, err := createForRace(ctx, fs, k.Subscribe(simEventBuffer), tmp, o)
	if err != nil {
		return err
	}
	attr, err := sysfs.DeviceAttr(o.rootDecoder, "delete_region")
	if err != nil {
		return err
	}
	warn0, bug0 := k.Counts()
	writes0 := k.Writes(o.rootDecoder + "/delete_region")

	results := make([]error, o.writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range o.writers {
		wg.Go(func() {
			<-start
			// Deliberately not through internal/lock: this is the unsafe
			// path every unaware tool takes.
			results[i] = fs.Write(attr, name)
		})
	}
	close(start)
	wg.Wait()

	warn, bug := k.Counts()
	writes := k.Writes(o.rootDecoder+"/delete_region") - writes0
	fmt.Fprintf(out, "simulated Linux %s: created %s on %s, then %d unserialized writers wrote %q to %s at once\n",
		o.profile, name, o.rootDecoder, o.writers, name, attr)
	fmt.Fprintf(out, "write results: %s\n", summarize(results))
	fmt.Fprintf(out, "delete_region writes reaching the kernel: %d\n", writes)
	fmt.Fprintf(out, "kernel WARNING: %d\n", warn-warn0)
	fmt.Fprintf(out, "kernel BUG: %d\n", bug-bug0)
	shown := 0
	for _, line := range k.Log() {
		if strings.Contains(line, "WARNING:") || strings.Contains(line, "BUG:") {
			if shown == 3 {
				fmt.Fprintln(out, "  ...")
				break
			}
			fmt.Fprintln(out, "  "+line)
			shown++
		}
	}
	return nil
}

// createForRace creates one region with the daemon's engine, waits until
// it has settled, and stops the engine.
func createForRace(ctx context.Context, fs *sysfs.FS, events uevent.Source, tmp string, o simRaceOptions) (string, error) {
	reg, err := lock.NewRegistry(fs, filepath.Join(tmp, "lock"))
	if err != nil {
		return "", err
	}
	eng, err := region.New(region.Config{FS: fs, Writers: reg, Events: events, StateDir: filepath.Join(tmp, "state")})
	if err != nil {
		return "", err
	}
	// The engine runs until this function returns; runWG owns it. runErr
	// is valid once ended is closed.
	runCtx, stop := context.WithCancel(ctx)
	var runWG sync.WaitGroup
	var runErr error
	ended := make(chan struct{})
	runWG.Go(func() {
		defer close(ended)
		runErr = eng.Run(runCtx)
	})
	defer func() {
		stop()
		runWG.Wait()
	}()
	select {
	case <-eng.Ready():
	case <-ended:
		return "", fmt.Errorf("engine: %w", runErr)
	}
	createCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	info, err := eng.Create(createCtx, region.CreateRequest{RootDecoder: o.rootDecoder, Type: "pmem", Size: region.SizeAlign, NoBind: o.noBind})
	if err != nil {
		return "", fmt.Errorf("create the region to race on: %w", err)
	}
	return info.Name, nil
}

// summarize counts the writes' outcomes by errno: "ok: 1, ENODEV: 49".
func summarize(results []error) string {
	counts := map[string]int{}
	for _, err := range results {
		key := "ok"
		if err != nil {
			var errno unix.Errno
			if errors.As(err, &errno) {
				key = unix.ErrnoName(errno)
			} else {
				key = err.Error()
			}
		}
		counts[key]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}
