package main

import (
	"fmt"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/devname"
)

func newCreateCommand() *cobra.Command {
	var (
		decoder, typ, size, uuid string
		ways, granularity        uint32
		targets                  []string
		noBind, asJSON           bool
		timeout                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create [--decoder DECODER] [--size SIZE] [--target TARGET...] [flags]",
		Short: "Create a region and print its name",
		Long: `Create a region in a root decoder. The daemon runs the kernel's create
handshake and configuration in order, commits, binds (unless --no-bind) and
waits until the devices below the region are registered. Any failure rolls
back everything written. Interrupted (Ctrl-C) before the daemon commits the
region, the create is cancelled and rolled back; after that it finishes.

As with ` + "`cxl create-region`" + `: targets are memdevs (mem0 mem1; the daemon
picks each one's endpoint decoder) or endpoint decoders, one per
interleave position, after --target or as arguments; --ways defaults to
the number of targets; --size defaults to the largest size the targets
can give; --decoder defaults to the first root decoder that can hold the
region's type and targets.

The kernel hands out a device's capacity in endpoint decoder order and
takes it back only from the top; a create those rules forbid now (for
example while a deleted region's capacity is stranded below another
region) exits 4 (busy), naming the rule and the regions in the way.

SIZE is bytes (268435456), hexadecimal (0x10000000), or a number with K, M,
G or T (256M, 1G); it must be a multiple of 256 MiB x ways.`,
		Example: `  cxlregionctl create --decoder decoder0.0 --type pmem --size 256M
  cxlregionctl create --target mem0 mem1
  cxlregionctl create --decoder decoder0.1 --size 1G --ways 2 --target decoder3.0 --target decoder7.0
  cxlregionctl create --decoder decoder0.0 --size 256M --json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := map[string]godbus.Variant{
				api.OptType: godbus.MakeVariant(typ),
			}
			if size != "" {
				n, err := parseSize(size)
				if err != nil {
					return usageErr("--size: %v", err)
				}
				opts[api.OptSize] = godbus.MakeVariant(n)
			}
			if decoder != "" && !devname.IsDecoder(decoder) {
				return usageErr("--decoder %q: want a root decoder name such as decoder0.0", decoder)
			}
			targets = append(targets, args...)
			for _, t := range targets {
				if !devname.IsDecoder(t) && !devname.IsMemdev(t) {
					return usageErr("--target %q: want a memdev (mem0) or an endpoint decoder (decoder3.0)", t)
				}
			}
			if cmd.Flags().Changed("ways") {
				opts[api.OptWays] = godbus.MakeVariant(ways)
			}
			if cmd.Flags().Changed("granularity") {
				opts[api.OptGranularity] = godbus.MakeVariant(granularity)
			}
			if len(targets) > 0 {
				opts[api.OptTargets] = godbus.MakeVariant(targets)
			}
			if uuid != "" {
				opts[api.OptUUID] = godbus.MakeVariant(uuid)
			}
			if noBind {
				opts[api.OptNoBind] = godbus.MakeVariant(true)
			}
			if err := addTimeout(opts, timeout); err != nil {
				return err
			}
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			what := "create region in " + decoder
			if decoder == "" {
				what = "create region"
			}
			objects, err := c.callAsJob(cmd.Context(), timeout, cmd.ErrOrStderr(), what, api.ManagerPath, api.ManagerInterface+"."+api.MethodCreateRegion, decoder, opts)
			if err != nil {
				return err
			}
			var name string
			ok := len(objects) == 1
			if ok {
				name, ok = api.RegionName(objects[0])
			}
			if !ok {
				return &exitError{code: api.ExitFailure, err: fmt.Errorf("%s: unexpected result %v", what, objects)}
			}
			if !asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), name)
				return nil
			}
			r, err := c.region(cmd.Context(), name)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&decoder, "decoder", "d", "", "root decoder to create the region in (default: the first that can hold it)")
	f.StringVarP(&typ, "type", "t", api.DefaultRegionType, "pmem or ram")
	f.StringVarP(&size, "size", "s", "", "region size (default: the largest the targets can give)")
	f.Uint32VarP(&ways, "ways", "w", 0, "interleave ways (default: the number of targets, or the window's)")
	f.Uint32VarP(&granularity, "granularity", "g", 0, "interleave granularity in bytes (default: the window's)")
	f.StringSliceVarP(&targets, "target", "m", nil, "memdevs or endpoint decoders by position: mem0,mem1 or repeated (default: picked)")
	f.StringVar(&uuid, "uuid", "", "pmem region uuid (default: generated)")
	f.BoolVar(&noBind, "no-bind", false, "commit the region but do not bind it")
	f.BoolVar(&asJSON, "json", false, "print the new region as JSON instead of its name")
	f.DurationVar(&timeout, "timeout", 0, "give up after this long (default: the daemon's)")
	_ = cmd.RegisterFlagCompletionFunc("decoder", completeRootDecoders)
	_ = cmd.RegisterFlagCompletionFunc("type", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pmem", "ram"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// addTimeout sets the timeout option from --timeout.
func addTimeout(opts map[string]godbus.Variant, timeout time.Duration) error {
	if timeout == 0 {
		return nil
	}
	if timeout < 0 || timeout > api.MaxTimeout {
		return usageErr("--timeout %s: want more than 0 and at most %s", timeout, api.MaxTimeout)
	}
	opts[api.OptTimeout] = godbus.MakeVariant(timeout.Seconds())
	return nil
}
