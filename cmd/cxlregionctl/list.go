package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/devname"
)

func newListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List regions",
		Long: `List the regions the daemon knows, in the kernel's id order.

` + columnsHelp(listColumns) + `
--json prints an array of region objects with ` + "`cxl list -R -T`" + `'s fields,
meanings and types (region, resource, size, type, interleave_ways,
interleave_granularity, decode_state "commit" or "reset", state "disabled"
only for a region not bound, uuid, mappings), then the daemon's own
(root_decoder, generation, origin, lifecycle, settled). STATE in the table is
the lifecycle: configuring, committed, enabled or deleting. The memory's
fields are ` + "`daxctl list`" + `'s (mode, target_node, online_memblocks,
total_memblocks, movable).`,
		Example: "  cxlregionctl list\n  cxlregionctl list --json | jq '.[].region'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			objs, err := c.managedObjects(cmd.Context())
			if err != nil {
				return err
			}
			regions, err := api.DecodeRegions(objs)
			if err != nil {
				return &exitError{code: api.ExitFailure, err: fmt.Errorf("unexpected reply: %w", err)}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), regions)
			}
			t := newTable(cmd.OutOrStdout(), columnNames(listColumns)...)
			for _, r := range regions {
				t.row(r.Region, r.RootDecoder, r.Type, formatSize(r.Size), strconv.Itoa(int(r.InterleaveWays)), r.Lifecycle,
					yesNo(r.Settled), strconv.FormatUint(r.Generation, 10), r.Origin, memory(r), orDash(targets(r)))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// memory sums up the region's memory in one word or a few.
func memory(r api.Region) string {
	switch {
	case r.Mode == "":
		return "-"
	case r.OnlineMemblocks == 0:
		return r.Mode
	}
	s := fmt.Sprintf("%s:%s-online", r.Mode, formatSize(r.OnlineMemoryBytes))
	if r.TargetNode != nil {
		s += fmt.Sprintf("@node%d", *r.TargetNode)
	}
	return s
}

// column is one column of a table and what it means, for --help.
type column struct{ name, meaning string }

// listColumns are list's columns, in order; the help explains each.
var listColumns = []column{
	{"REGION", "the kernel's region name"},
	{"ROOT DECODER", "the CXL window (root decoder) the region is in"},
	{"TYPE", "pmem or ram"},
	{"SIZE", "the region's size"},
	{"WAYS", "interleave ways (endpoint decoders in the region)"},
	{"STATE", "configuring (created, not committed), committed (no driver), enabled (bound to cxl_region) or deleting (a delete is in flight)"},
	{"SETTLED", "yes once the kernel's work around the region has gone quiet; delete and disable wait for it"},
	{"GEN", "the region's generation: it changes whenever the kernel reuses the name, so a delete of an old generation never touches a new region"},
	{"ORIGIN", "who made the region: daemon (through cxlregiond), kernel (found committed at start: firmware or auto-assembly) or foreign (another tool, behind the daemon's back)"},
	{"MEMORY", "what the region's memory is doing: - (no dax device), devdax, or system-ram with how much is online and on which NUMA node; such a region is deleted or disabled only with --offline"},
	{"TARGETS", "endpoint decoders by position, each with its memdev"},
}

func columnNames(cols []column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return names
}

// columnsHelp is the "Columns:" section of a command's help.
func columnsHelp(cols []column) string {
	var b strings.Builder
	b.WriteString("Columns:\n")
	for _, c := range cols {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.meaning)
	}
	return b.String()
}

func targets(r api.Region) string {
	var parts []string
	for _, m := range r.Mappings {
		parts = append(parts, m.Decoder+"("+orDash(m.Memdev)+")")
	}
	return strings.Join(parts, ",")
}

func newInfoCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:               "info REGION|MEMDEV",
		Short:             "Show one region, or one memdev's capacity and endpoint decoders",
		Example:           "  cxlregionctl info region0\n  cxlregionctl info region0 --json\n  cxlregionctl info mem0",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRegions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := regionPath(args[0]); err != nil && !devname.IsMemdev(args[0]) {
				return err
			}
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			if devname.IsMemdev(args[0]) {
				return memdevInfo(cmd, c, args[0], asJSON)
			}
			r, err := c.region(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			return printRegion(cmd, r)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// memdevInfo shows one memdev's capacity, each endpoint decoder's
// allocation, and what is stranded.
func memdevInfo(cmd *cobra.Command, c *client, name string, asJSON bool) error {
	objs, err := c.managedObjects(cmd.Context())
	if err != nil {
		return err
	}
	st, err := api.DecodeStatus(objs[api.ManagerPath][api.ManagerInterface], objs)
	if err != nil {
		return &exitError{code: api.ExitFailure, err: fmt.Errorf("unexpected reply: %w", err)}
	}
	for _, m := range st.Memdevs {
		if m.Memdev != name {
			continue
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), m)
		}
		out := cmd.OutOrStdout()
		if err := printMemdevs(out, []api.Memdev{m}); err != nil {
			return err
		}
		fmt.Fprintln(out)
		t := newTable(out, "DECODER", "MODE", "DPA SIZE", "REGION", "STRANDED")
		for _, d := range m.Decoders {
			t.row(d.Decoder, orDash(d.Mode), formatSize(d.DPASize), orDash(d.Region), yesNo(d.Stranded))
		}
		return t.flush()
	}
	return &exitError{code: api.ExitNotFound, err: fmt.Errorf("%s: no such memdev", name)}
}

func printRegion(cmd *cobra.Command, r api.Region) error {
	t := newTable(cmd.OutOrStdout(), "region:", r.Region)
	t.row("root decoder:", r.RootDecoder)
	t.row("type:", r.Type)
	t.row("size:", fmt.Sprintf("%s (%d)", formatSize(r.Size), r.Size))
	if r.Resource != 0 {
		t.row("resource:", fmt.Sprintf("%#x", r.Resource))
	} else {
		t.row("resource:", "-")
	}
	t.row("uuid:", orDash(r.UUID))
	t.row("interleave:", fmt.Sprintf("%d ways, %d bytes granularity", r.InterleaveWays, r.InterleaveGranularity))
	t.row("decode state:", orDash(r.DecodeState))
	t.row("lifecycle:", r.Lifecycle)
	t.row("state:", orDash(r.State))
	t.row("settled:", yesNo(r.Settled))
	t.row("generation:", strconv.FormatUint(r.Generation, 10))
	t.row("origin:", r.Origin)
	if r.Mode == "" {
		t.row("memory:", "-")
	} else {
		mem := fmt.Sprintf("%s, %s online (%d of %d memory blocks)", r.Mode, formatSize(r.OnlineMemoryBytes), r.OnlineMemblocks, r.TotalMemblocks)
		if r.TargetNode != nil {
			mem += fmt.Sprintf(", node %d", *r.TargetNode)
		}
		if r.OnlineMemblocks > 0 {
			mem += ", " + map[bool]string{true: "movable", false: "not all movable"}[r.Movable]
		}
		t.row("memory:", mem)
	}
	for _, m := range r.Mappings {
		t.row(fmt.Sprintf("target%d:", m.Position), m.Decoder+" ("+orDash(m.Memdev)+")")
	}
	return t.flush()
}

func newStatusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the daemon's version, guard, and root decoders with their writers",
		Example: "  cxlregionctl status",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			objs, err := c.managedObjects(cmd.Context())
			if err != nil {
				return err
			}
			st, err := api.DecodeStatus(objs[api.ManagerPath][api.ManagerInterface], objs)
			if err != nil {
				return &exitError{code: api.ExitFailure, err: fmt.Errorf("unexpected reply: %w", err)}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			out := cmd.OutOrStdout()
			kernel := "sysfs"
			if st.Simulated {
				kernel = "simulated (cxlregiond --simulate)"
			}
			fmt.Fprintf(out, "cxlregiond %s on %s\n", st.Version, api.BusName)
			fmt.Fprintf(out, "kernel:          %s\n", kernel)
			fmt.Fprintf(out, "guard:           %s\n", map[bool]string{true: "active", false: "inactive"}[st.GuardActive])
			if st.GuardActive {
				fmt.Fprintf(out, "guard queue:     %d\n", st.GuardQueue)
			}
			fmt.Fprintf(out, "kernel features: %s\n", orDash(strings.Join(st.KernelFeatures, ", ")))
			fmt.Fprintf(out, "regions:         %d\n\n", st.Regions)
			// FREE is the largest region a create can get now: free HPA,
			// the devices' free capacity and the kernel's decoder order.
			t := newTable(out, "ROOT DECODER", "SIZE", "FREE", "PMEM", "RAM", "WAYS", "FROZEN", "QUEUE", "REASON")
			for _, rd := range st.RootDecoders {
				t.row(rd.Decoder, formatSize(rd.Size), formatSize(rd.MaxAvailableExtent), yesNo(rd.PmemCapable), yesNo(rd.VolatileCapable),
					strconv.Itoa(int(rd.InterleaveWays)), yesNo(rd.Frozen), strconv.Itoa(int(rd.QueueDepth)), orDash(rd.FrozenReason))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if len(st.Memdevs) == 0 {
				return nil
			}
			fmt.Fprintln(out)
			return printMemdevs(out, st.Memdevs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printMemdevs prints each memdev's capacity and, under it, the endpoint
// decoders whose capacity is stranded and what frees it.
func printMemdevs(out io.Writer, memdevs []api.Memdev) error {
	t := newTable(out, "MEMDEV", "TOTAL", "ALLOCATED", "FREE", "STRANDED")
	for _, m := range memdevs {
		t.row(m.Memdev, formatSize(m.Total), formatSize(m.Allocated), formatSize(m.Free), formatSize(m.Stranded))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, m := range memdevs {
		for _, d := range m.Decoders {
			if d.Stranded {
				fmt.Fprintf(out, "%s: %s still holds %s of a deleted region; freed when %s deleted\n",
					m.Memdev, d.Decoder, formatSize(d.DPASize), orDash(regionsAbove(m, d)))
			}
		}
	}
	return nil
}

// regionsAbove names the regions on the memdev's decoders above d: the
// kernel frees d's capacity only once they are gone.
func regionsAbove(m api.Memdev, d api.EndpointDecoder) string {
	var above []string
	past := false
	for _, o := range m.Decoders {
		if o.Decoder == d.Decoder {
			past = true
			continue
		}
		if past && o.Region != "" {
			above = append(above, o.Region+" ("+o.Decoder+")")
		}
	}
	switch len(above) {
	case 0:
		return ""
	case 1:
		return above[0] + " is"
	}
	return strings.Join(above, " and ") + " are"
}

// completeRegions completes region names from the daemon.
func completeRegions(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return objectNames(cmd, api.RegionInterface), cobra.ShellCompDirectiveNoFileComp
}

// completeRootDecoders completes root decoder names from the daemon.
func completeRootDecoders(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return objectNames(cmd, api.RootDecoderInterface), cobra.ShellCompDirectiveNoFileComp
}

func objectNames(cmd *cobra.Command, iface string) []string {
	c, err := connect()
	if err != nil {
		return nil
	}
	defer c.Close()
	objs, err := c.managedObjects(cmd.Context())
	if err != nil {
		return nil
	}
	var names []string
	for _, ifaces := range objs {
		if p, ok := ifaces[iface]; ok {
			if n, ok := p[api.PropName].Value().(string); ok {
				names = append(names, n)
			}
		}
	}
	return names
}
