// Command cxlregiond owns every write to the CXL region control files in
// sysfs, so that the kernel's delete_region races cannot happen, and serves
// the regions on D-Bus (io.github.cxlregion1) and Prometheus metrics.
//
// This package holds flags, configuration, wiring and signals; the daemon's
// logic lives in internal/.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/metrics"
)

// daemonOptions are the command line's settings that are not tunables.
type daemonOptions struct {
	configFile string
	// configOptional: --config was not given, so configFile is
	// defaultConfigFile and may be missing.
	configOptional bool
	sysfsRoot      string
	stateDir       string
	lockDir        string
	guard          string

	simulate         string // "" (off), "default", "qemu" or a topology file
	simLog           string
	simState         string
	simProfile       string
	simDeleteDelay   time.Duration
	simRegisterDelay time.Duration
	simAssembleTime  time.Duration
	simHypervisor    bool
	simSystemRAM     bool
	// guardRefuseOnlineMemory: the guard refuses delete_region opens while
	// memory of the root decoder's regions is online.
	guardRefuseOnlineMemory bool
}

// defaultConfigFile is read when --config is not given (the Debian package
// installs it, every key commented out with its default); a missing one is
// no error.
const defaultConfigFile = "/etc/cxlregiond/cxlregiond.conf"

// flagKeys maps flag names to the config file keys they override.
var flagKeys = map[string]string{
	"log-level": keyLogLevel, "settle-window": keySettleWindow, "bound-quiet": keyBoundQuiet,
	"default-timeout": keyDefaultTimeout, "rescan-interval": keyRescanInterval, "metrics-listen": keyMetricsListen,
}

func main() {
	os.Exit(execute(os.Args[1:]))
}

func execute(args []string) int {
	cmd := newRootCommand()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cxlregiond:", err)
		return 1
	}
	return 0
}

func newRootCommand() *cobra.Command {
	var o daemonOptions
	s := settings{
		LogLevel:       slog.LevelInfo,
		SettleWindow:   2 * time.Second,
		BoundQuiet:     100 * time.Millisecond,
		DefaultTimeout: 60 * time.Second,
		RescanInterval: 5 * time.Minute,
		MetricsListen:  metrics.DefaultAddr,
	}
	var logLevel string
	cmd := &cobra.Command{
		Use:   "cxlregiond",
		Short: "Serialize every write to the CXL region sysfs files and serve regions on D-Bus",
		Long: `cxlregiond owns every write to the CXL region control files under
/sys/bus/cxl: one writer per root decoder, delete_region written at most once
per region, no write into a teardown or into unfinished kernel work. It
serves the regions on the system bus as io.github.cxlregion1 (see
cxlregionctl) and Prometheus metrics on a loopback listener.

Without CXL hardware, --simulate runs it on a built-in model of an unpatched
kernel (its log, with WARNING and BUG reports where the real kernel would
print them, goes to --sim-log).`,
		Example: `  cxlregiond                                  # on a host, under systemd
  cxlregiond --simulate --sim-log /tmp/sim.log --state-dir /tmp/state --lock-dir /tmp/lock
  cxlregiond --simulate=topology.json --metrics-listen 127.0.0.1:9477
  cxlregiond sim-race --writers 50             # the race, without the daemon`,
		Version:       api.FullVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := s.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: %w", logLevel, err)
			}
			if err := checkMetricsListen(s.MetricsListen); err != nil {
				return fmt.Errorf("--metrics-listen %q: %w", s.MetricsListen, err)
			}
			if o.guard != "on" && o.guard != "off" && o.guard != "auto" {
				return fmt.Errorf("--guard %q: want on, off or auto", o.guard)
			}
			o.configOptional = !cmd.Flags().Changed("config")
			flagsSet := map[string]bool{}
			for flag, key := range flagKeys {
				if cmd.Flags().Changed(flag) {
					flagsSet[key] = true
				}
			}
			serveCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runDaemon(serveCtx, &o, s, flagsSet)
		},
	}
	cmd.SetVersionTemplate("cxlregiond {{.Version}}\n")
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", defaultConfigFile, "config file of key = value lines ("+strings.Join(sortedKeys(configKeys), ", ")+`; see cxlregiond.conf(5)), reloaded when it changes, on SIGHUP and on "systemctl reload"; a missing default file is no file, "" reads none`)
	f.StringVar(&o.sysfsRoot, "sysfs-root", "/sys", "where sysfs is mounted")
	f.StringVar(&o.stateDir, "state-dir", "/var/lib/cxlregiond", "intent journal and generation counter")
	f.StringVar(&o.lockDir, "lock-dir", "/run/cxlregiond/lock", "per-root-decoder lock files, shared with cxlregionctl lock")
	f.StringVar(&o.guard, "guard", "auto", "fanotify guard that serializes other processes' writes: on, off, or auto (on when the host supports it)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&s.SettleWindow, "settle-window", s.SettleWindow, "how long a region the daemon did not create must stay unchanged before it may be deleted")
	f.DurationVar(&s.BoundQuiet, "bound-quiet", s.BoundQuiet, "how long the devices below a bound region must be unchanged before it may be deleted")
	f.DurationVar(&s.DefaultTimeout, "default-timeout", s.DefaultTimeout, "bound of an operation whose caller gave no timeout")
	f.DurationVar(&s.RescanInterval, "rescan-interval", s.RescanInterval, "period of full sysfs rescans besides uevents; 0 disables")
	f.StringVar(&s.MetricsListen, "metrics-listen", s.MetricsListen, `address of the Prometheus /metrics listener; "off" disables it`)

	f.StringVar(&o.simulate, "simulate", "", `run on the built-in kernel simulator instead of sysfs: "default", "qemu" (the reference machine), or a topology JSON file`)
	f.Lookup("simulate").NoOptDefVal = "default"
	f.StringVar(&o.simLog, "sim-log", "", "with --simulate: append the simulated kernel's log (writes, WARNING and BUG reports) to this file")
	f.StringVar(&o.simState, "sim-state", "", "with --simulate: keep the simulated kernel's state in this file across restarts")
	f.StringVar(&o.simProfile, "sim-profile", "6.12", "with --simulate: the kernel to model, 6.1, 6.12 or 6.12-fixed (the upstream delete_region fix)")
	f.DurationVar(&o.simDeleteDelay, "sim-delete-delay", 2*time.Millisecond, "with --simulate: time delete_region_store spends between finding the region and releasing it (the race window)")
	f.DurationVar(&o.simRegisterDelay, "sim-register-delay", 50*time.Millisecond, "with --simulate: how long after a bind the nd/dax devices register")
	f.DurationVar(&o.simAssembleTime, "sim-assemble-time", 200*time.Millisecond, "with --simulate: how long kernel auto-assembly holds a region")
	f.BoolVar(&o.simHypervisor, "sim-hypervisor", false, "with --simulate: model 6.12 under a hypervisor (commit fails with ENXIO)")
	f.BoolVar(&o.guardRefuseOnlineMemory, "guard-refuse-online-memory", false, "with the guard on: refuse (EPERM) another process's open of a root decoder's delete_region while a region of it has memory online as System RAM (such a delete would leave that memory online over an undecoded range); this also refuses deletes of the root decoder's other regions meanwhile")
	f.BoolVar(&o.simSystemRAM, "sim-system-ram", false, "with --simulate: give every ram region's memory to the page allocator once it registers (dax kmem, blocks online movable), as daxctl reconfigure-device -m system-ram")

	cmd.AddCommand(newSimRaceCommand())
	return cmd
}
