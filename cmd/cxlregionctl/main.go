// Command cxlregionctl is the command-line client of cxlregiond: it lists,
// creates, deletes, enables and disables CXL regions through the daemon's
// D-Bus API (io.github.cxlregion1 on the system bus, or the bus
// DBUS_SYSTEM_BUS_ADDRESS names), follows changes, and runs commands under a
// root decoder's lock.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command line and returns the exit code; errors go to
// stderr, naming the object and the reason.
func execute(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err == nil {
		return api.ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "cxlregionctl:", ee.err)
		}
		return ee.code
	}
	// Cobra's own errors: unknown command or flag, wrong argument count.
	fmt.Fprintln(stderr, "cxlregionctl:", err)
	fmt.Fprintln(stderr, "Run 'cxlregionctl --help' for usage.")
	return api.ExitInvalidArgument
}

// exitError is an error with the exit code it means.
type exitError struct {
	code int
	err  error // nil: exit quietly (lock: the command's own status)
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: api.ExitInvalidArgument, err: fmt.Errorf(format, args...)}
}

func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit status:\n")
	for _, e := range api.ExitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.Code, e.Meaning)
	}
	b.WriteString("  `lock` exits with its command's status.\n")
	return b.String()
}

func newRootCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cxlregionctl",
		Short: "Manage CXL regions through cxlregiond",
		Long: `cxlregionctl talks to cxlregiond on the system bus (io.github.cxlregion1;
DBUS_SYSTEM_BUS_ADDRESS overrides the bus). Reading is open to every user;
create, delete, enable and disable need root, or the polkit action
io.github.cxlregion1.manage where polkit runs.

--json output uses the field names of ` + "`cxl list -R`" + ` where the meaning is
the same (region, resource, size, type, interleave_ways,
interleave_granularity, decode_state, uuid, mappings), plus root_decoder,
generation, origin, state and settled.

` + exitCodesHelp(),
		Example: `  cxlregionctl list
  cxlregionctl create --decoder decoder0.0 --type pmem --size 256M
  cxlregionctl delete region0
  cxlregionctl monitor --json
  cxlregionctl lock decoder0.0 -- cxl destroy-region -f region0`,
		Version:       api.FullVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetVersionTemplate("cxlregionctl {{.Version}}\n")
	cmd.AddCommand(
		newListCommand(),
		newInfoCommand(),
		newCreateCommand(),
		newDeleteCommand(),
		newBindCommand("enable", "Bind a committed region to the cxl_region driver", api.MethodEnable),
		newBindCommand("disable", "Unbind a region from the cxl_region driver, once the kernel has settled", api.MethodDisable),
		newMonitorCommand(),
		newLockCommand(),
		newStatusCommand(),
	)
	return cmd
}
