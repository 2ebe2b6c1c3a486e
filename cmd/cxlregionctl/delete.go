package main

import (
	"errors"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/cxlregion/cxlregiond/api"
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
	var timeout time.Duration
	var offline bool
	cmd := &cobra.Command{
		Use:   "delete REGION",
		Short: "Delete a region",
		Long: `Delete a region: the daemon waits until the kernel's work around it has
settled, unbinds it if bound, writes delete_region once, and frees its
endpoint decoders' capacity.

delete names the region's current generation. If that generation is
deleted meanwhile by a concurrent request (another delete of the same
region, from this command or any other client), delete succeeds: the
region it was asked to delete is gone, and the daemon wrote delete_region
once for all of them. A newer region that reuses the name is never
touched. A region that does not exist when delete starts is an error
(exit status 3).` + memoryHelp,
		Example:           "  cxlregionctl delete region0\n  cxlregionctl delete region0 --timeout 30s\n  cxlregionctl delete --offline --timeout 10m region0",
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
			c, err := connect()
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := c.region(cmd.Context(), name)
			if err != nil {
				return err
			}
			opts[api.OptGeneration] = godbus.MakeVariant(r.Generation)
			if offline {
				opts[api.OptOffline] = godbus.MakeVariant(true)
			}
			err = c.call(cmd.Context(), timeout, "delete "+name, path, api.RegionInterface+"."+api.MethodDelete, opts).Err
			var ee *exitError
			if errors.As(err, &ee) && ee.code == api.ExitNotFound {
				// The generation seen above is gone: deleted by a request
				// that ran at the same time. That is what was asked.
				return nil
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: the daemon's)")
	cmd.Flags().BoolVar(&offline, "offline", false, offlineHelp)
	return cmd
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
