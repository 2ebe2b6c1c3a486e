package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/devname"
)

// offlineHelp is the --offline flag's help, the same for delete and
// disable.
const offlineHelp = "when the region's memory is online as System RAM, offline it first (its pages migrate to other nodes; can take minutes, see --timeout) instead of refusing"

// memoryHelp is what delete and disable say about memory in use.
const memoryHelp = `

A region whose memory is online as System RAM (dax kmem: daxctl
reconfigure-device -m system-ram) is refused with exit status 4 before
anything is written: tearing it down would leave that memory online over
an address range nothing decodes (every page on it reads back zeros) and
leak the range until reboot. With --offline the daemon offlines the
region's memory blocks first, under the region's writer; if a block cannot
be offlined (EBUSY: unmovable pages) it puts the blocks it offlined back
online, leaves the region as it was and fails naming the block.`

func newDeleteCommand() *cobra.Command {
	var (
		timeout time.Duration
		all     bool
		decoder string
		offline bool
	)
	cmd := &cobra.Command{
		Use:   "delete REGION... | --all [--decoder DECODER]",
		Short: "Delete regions",
		Long: `Delete regions: for each, the daemon waits until the kernel's work around
it has settled, unbinds it if bound, writes delete_region once, and frees
its endpoint decoders' capacity.

The kernel takes a device's capacity back only from its highest allocated
endpoint decoder, so several regions are deleted highest decoders first:
then everything is given back. Capacity of a region deleted below another
one stays allocated (stranded, shown by status and the metrics) until the
regions above it go; the daemon then frees it.

--all deletes every region (of DECODER with --decoder). A failed delete
does not stop the others; the exit status is the first failure's.

delete names each region's current generation. If that generation is
deleted meanwhile by a concurrent request (another delete of the same
region, from this command or any other client), delete succeeds: the
region it was asked to delete is gone, and the daemon wrote delete_region
once for all of them. A newer region that reuses the name is never
touched. A region that does not exist when delete starts is an error
(exit status 3).` + memoryHelp,
		Example:           "  cxlregionctl delete region0\n  cxlregionctl delete region1 region0 --timeout 30s\n  cxlregionctl delete --all --decoder decoder0.0\n  cxlregionctl delete --offline --timeout 10m region0",
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: completeRegions,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErr("--all deletes every region: name no regions with it")
			case !all && len(args) == 0:
				return usageErr("name at least one region, or --all")
			case !all && decoder != "":
				return usageErr("--decoder goes with --all")
			case decoder != "" && !devname.IsDecoder(decoder):
				return usageErr("--decoder %q: want a root decoder name such as decoder0.0", decoder)
			}
			for _, name := range args {
				if !devname.IsRegion(name) {
					return usageErr("%q is not a region name (want region<N>, e.g. region0)", name)
				}
			}
			opts := map[string]godbus.Variant{}
			if err := addTimeout(opts, timeout); err != nil {
				return err
			}
			if offline {
				opts[api.OptOffline] = godbus.MakeVariant(true)
			}
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			regions, err := deleteSet(cmd, c, args, all, decoder)
			if err != nil {
				return err
			}
			var first error
			for _, r := range regions {
				if err := deleteOne(cmd, c, r, opts, timeout); err != nil {
					if len(regions) > 1 {
						fmt.Fprintf(cmd.ErrOrStderr(), "cxlregionctl: %v\n", err)
					}
					if first == nil {
						first = err
					}
				}
			}
			if first != nil && len(regions) > 1 {
				var ee *exitError
				if errors.As(first, &ee) {
					return &exitError{code: ee.code} // already said
				}
			}
			return first
		},
	}
	f := cmd.Flags()
	f.DurationVar(&timeout, "timeout", 0, "give up on each region after this long (default: the daemon's)")
	f.BoolVar(&all, "all", false, "delete every region (of --decoder)")
	f.StringVarP(&decoder, "decoder", "d", "", "with --all: only the regions of this root decoder")
	_ = cmd.RegisterFlagCompletionFunc("decoder", completeRootDecoders)
	f.BoolVar(&offline, "offline", false, offlineHelp)
	return cmd
}

// deleteSet reads the regions to delete and orders them as the kernel
// needs: highest endpoint decoder first.
func deleteSet(cmd *cobra.Command, c *client, names []string, all bool, decoder string) ([]api.Region, error) {
	var regions []api.Region
	if all {
		objs, err := c.managedObjects(cmd.Context())
		if err != nil {
			return nil, err
		}
		everyone, err := api.DecodeRegions(objs)
		if err != nil {
			return nil, &exitError{code: api.ExitFailure, err: fmt.Errorf("unexpected reply: %w", err)}
		}
		for _, r := range everyone {
			if decoder == "" || r.RootDecoder == decoder {
				regions = append(regions, r)
			}
		}
	} else {
		seen := map[string]bool{}
		for _, name := range names {
			if seen[name] {
				continue
			}
			seen[name] = true
			r, err := c.region(cmd.Context(), name)
			if err != nil {
				return nil, err
			}
			regions = append(regions, r)
		}
	}
	slices.SortStableFunc(regions, highestDecoderFirst)
	return regions, nil
}

// highestDecoderFirst orders regions so that each region's endpoint
// decoders are the highest allocated on their ports when it is deleted:
// by highest endpoint decoder id, then by HPA, descending.
func highestDecoderFirst(a, b api.Region) int {
	return cmp.Or(cmp.Compare(topDecoderID(b), topDecoderID(a)), cmp.Compare(b.Resource, a.Resource))
}

// topDecoderID is the highest K of the region's endpoint decoders
// decoderM.K, -1 without any.
func topDecoderID(r api.Region) int {
	top := -1
	for _, m := range r.Mappings {
		if i := strings.LastIndexByte(m.Decoder, '.'); i >= 0 {
			if n, err := strconv.Atoi(m.Decoder[i+1:]); err == nil && n > top {
				top = n
			}
		}
	}
	return top
}

// deleteOne deletes the generation of r that was read.
func deleteOne(cmd *cobra.Command, c *client, r api.Region, opts map[string]godbus.Variant, timeout time.Duration) error {
	o := maps.Clone(opts)
	o[api.OptGeneration] = godbus.MakeVariant(r.Generation)
	path, _ := api.RegionPath(r.Region)
	err := c.call(cmd.Context(), timeout, "delete "+r.Region, path, api.RegionInterface+"."+api.MethodDelete, o).Err
	var ee *exitError
	if errors.As(err, &ee) && ee.code == api.ExitNotFound {
		// The generation seen above is gone: deleted by a request
		// that ran at the same time. That is what was asked.
		return nil
	}
	return err
}

func newBindCommand(use, short, method string) *cobra.Command {
	var timeout time.Duration
	var offline bool
	cmd := &cobra.Command{
		Use:               use + " REGION",
		Short:             short,
		Example:           "  cxlregionctl " + use + " region0",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRegions,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			path, err := regionPath(name)
			if err != nil {
				return err
			}
			opts := map[string]godbus.Variant{}
			if err := addTimeout(opts, timeout); err != nil {
				return err
			}
			if offline {
				opts[api.OptOffline] = godbus.MakeVariant(true)
			}
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			return c.call(cmd.Context(), timeout, use+" "+name, path, api.RegionInterface+"."+method, opts).Err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: the daemon's)")
	if method == api.MethodDisable {
		cmd.Long = short + "." + memoryHelp
		cmd.Flags().BoolVar(&offline, "offline", false, offlineHelp)
	}
	return cmd
}
