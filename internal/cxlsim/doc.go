// Package cxlsim is a model of an UNPATCHED Linux kernel's CXL region
// sysfs and uevents (Debian's 6.1 and 6.12, the kernels of the captures in
// docs/kernel.md#captures), for tests, benchmarks and `cxlregiond
// --simulate`. It is a model of what the kernel does, not a fake that
// agrees with the daemon: it imports nothing from the engine, and its
// races are the kernel's.
//
// # Using it
//
//	k, err := cxlsim.New(cxlsim.WithTopology(cxlsim.QEMUTopology()), cxlsim.WithProfile("6.1"))
//	fs := sysfs.New(k)              // *Kernel is a sysfs.Backend
//	src := k.Subscribe(256)          // a uevent.Source
//	k.AutoAssemble(ctx, spec)        // the kernel assembling a region on its own
//	k.InjectFault("decoder0.*/delete_region", unix.EIO, 1)
//	warn, bug := k.Counts()          // WARNINGs and BUGs printed so far
//	n := k.Writes("decoder0.0/delete_region", "region3")
//
// # How it maps to the kernel
//
//   - Tree: every device is a kobject with the sysfs path, bus listing,
//     attributes (names, modes, formats) and links the captures show for
//     its type on the chosen profile; TestTreeMatchesCaptures compares the
//     whole bus/cxl/devices of the captured QEMU machine with the real
//     kernels' snapshots, byte for byte, at every captured state. Paths
//     resolve in their bus form (bus/cxl/devices/region0/size) and their
//     devices/ form. Reading a write-only file or writing a read-only one
//     gives EACCES, a missing one ENOENT; errors wrap unix.Errno.
//   - Ids: one global memregion IDA (lowest free id); each root decoder
//     caches one id, shown by create_*_region; a create write must name it
//     (cmpxchg) or gets EBUSY, garbage EINVAL; a released region's id
//     becomes its root decoder's cached id again when lower
//     (cxl_region_release), so names are reused.
//   - Region state machine IDLE < INTERLEAVE_ACTIVE < ACTIVE <
//     RESET_PENDING < COMMIT with region.c's checks in region.c's order
//     (region.go), endpoint decoder mode and DPA rules of hdm.c
//     (endpoint.go), commit and decode reset with per-port commit order,
//     bind/unbind of cxl_region (bind.go). TestErrorsReplay replays every
//     row of both kernels' errors.tsv and gets the kernel's errno for each.
//   - delete_region_store as v6.0..v7.0 have it (delete.go): lookup, then
//     the delete delay with the model's lock released, then
//     devm_release_action. A region whose devres entry is already gone
//     gives the devres WARNING and the write still succeeds (race 1: two
//     deleters; race 2: cxl_acpi's devres_release_all); a region still
//     under auto-assembly gives a KASAN use-after-free report (race 3); a
//     bound pmem region whose nd region libnvdimm has not registered yet
//     gives the NULL pointer oops of docs/kernel.md#nd-oops, serialized
//     or not.
//   - Uevents (uevent.go): ACTION, DEVPATH, SUBSYSTEM, DEVTYPE, DRIVER and
//     a SEQNUM every event takes, in the captured orders;
//     TestUeventsMatchCaptures replays the captured phases.
//   - Log (klog.go): a line per write received, `cxlsim: write <path>
//     "<value>" -> ok|EBUSY|...`, and kernel WARNING and BUG reports shaped
//     like the captured ones, so `grep -c 'WARNING:'` and `grep -c 'BUG:'`
//     count the same events in a real dmesg and in this log.
//
// # Knobs
//
// WithTopology (DefaultTopology: 2 host bridges, 4 windows, 8 memdevs;
// QEMUTopology: the captured machine; LoadTopology reads JSON, see
// testdata/topology-*.json), WithProfile ("6.1", "6.12", "6.12-fixed":
// model choice 22), WithDeleteDelay
// (2ms), WithRegisterDelay (nd/dax registration after bind, 50ms),
// WithAssembleDuration (200ms), WithTeardownDelay (per region in a
// cxl_acpi unbind, 5ms), WithRebindDelay (endpoints after a cxl_acpi bind,
// 100ms), WithHypervisor, WithLogWriter, WithStateFile, WithClock,
// WithLogLines; at run time InjectFault, InjectDelay, ClearFaults and
// DropEvents.
//
// # Model choices
//
// Where the kernel source reading and the captures differ, the captures
// win; where neither says, the choice is written here. docs/kernel.md
// marks each fact with where it was observed; the ids C01-C77 are its
// capture ids.
//
//  1. Unbind uevents carry no DRIVER (captures); the source reading
//     expected it on bind and unbind (docs/kernel.md#uevents).
//  2. An endpoint decoder's mode can be changed while DPA is allocated
//     (C35 OK; the source reading expected EBUSY, unverified); ram on a
//     pmem-only device is ENXIO even while attached (C49).
//  3. A failed dpa_size resize frees the old allocation (C37, C40): the
//     store frees first, then allocates.
//  4. A window without room gives ERANGE (C24; unverified in the source).
//  5. A host bridge decoder shows granularity 4096 on 6.1 and 256 on 6.12
//     before first use (1-idle); after a region leaves it keeps the
//     region's granularity and HPA range, only its region link clears
//     (7-deleted). An endpoint decoder's start and size go back to 0.
//  6. Memdevs have no devtype or modalias file; 6.1 has no qos_class,
//     decoders_committed, parent_dport, region mode, create_ram_region or
//     mem security/state; 6.1 ports link to ACPI0016 companions, 6.12 to
//     the PCI root bus (captures).
//  7. The nd region of a CXL pmem region has the region's name on both
//     kernels (5-bound listing): no extra memregion id is used.
//  8. The nd side registers after the cxl_region bind uevent (the 6.12
//     order); 6.1 was also seen adding the nd region before it. Seeds
//     (namespace, btt, pfn, dax) are removed in that order; the captures
//     show this order varying.
//  9. cxl_acpi rebind: on 6.12 the captured port1 failed to probe
//     ("decoder1.0: Committed with zero size", a QEMU 7.2 HDM quirk) and
//     no endpoint came back within 3 s (6.1 added and removed it). The
//     model probes the ports at once and brings the endpoints (fresh
//     decoders, no DPA) back after WithRebindDelay. Regions do not come
//     back. On 6.12 pmemN goes at unbind and returns with its endpoint; on
//     6.1 it stays and rebinds at once.
//  10. The nd oops is modelled on every teardown of a pmem region whose nd
//     registration is pending (delete, unbind, commit 0, a departing
//     target, cxl_acpi unbind): the captured trace runs through
//     device_release_driver of the region, common to all of them; only the
//     delete was captured. The write fails with ErrKernelOops (wrapping
//     EFAULT) where the real task is killed; the model then finishes the
//     teardown, where the real machine is wedged.
//  11. Race 3 (not captured): the first 5% of an assembly is the window
//     between device_add and the remove action's registration, where a
//     delete WARNs and the region survives; after it, a delete prints a
//     KASAN slab-use-after-free report in __construct_region, unregisters
//     the region and AutoAssemble returns ErrAssemblyAborted.
//  12. Decoder reset out of commit order follows 6.12
//     (cxl_port_commit_reap: the decoder is disabled, commit_end stays
//     pinned until the higher ones go) on both profiles; 6.1's behaviour
//     is unverified. Out-of-order commit is EBUSY on both.
//  13. unregister_region detaches every attached target, not only
//     positions below interleave_ways (a kernel would leave a decoder
//     pointing at the freed region).
//  14. Host bridge decoders of a region: ways = the region's root ports
//     below the bridge, granularity = the region's (display only).
//  15. ram regions (not captured: the QEMU device is pmem-only): bind adds
//     and binds dax_regionN at once, like pmem_regionN; the device-dax
//     instance daxN.0 (SUBSYSTEM=dax, driver device_dax) follows after the
//     registration delay. Probe never finds System RAM in the range.
//  16. SEQNUM starts at 787 after boot; events the listener filters out
//     (the ACPI0017 wakeup source) still take one, so gaps occur as on a
//     host. Receive reports uevent.ErrResync only when the subscriber's
//     buffer overflowed.
//  17. One mutex stands for cxl_region_rwsem, cxl_dpa_rwsem and the device
//     locks. Stores that wait inside the kernel drop it while they wait:
//     delete_region between lookup and release, the cxl_acpi teardown per
//     region, injected delays, assembly steps. A second cxl_acpi unbind
//     during a teardown gets ENODEV.
//  18. Not modelled: switches, the endpoint CDAT blob, access0/1, v7.1
//     region locked, extended linear cache, position rules inside a host
//     bridge (cxl_port_setup_targets), interleave capability checks, EINTR
//     from killable locks, reads through an fd held across a delete, DEAD
//     decoders, cxl_port bind and other drivers' bind/unbind (EOPNOTSUPP),
//     pmem turned devdax (System RAM is modelled on ram regions only).
//  19. Persistence: the state file holds the model, not in-flight work. On
//     load, pending nd/dax registrations and unfinished assemblies are
//     completed, as the kernel would have; a delete interrupted before its
//     release never happened. Inode numbers are given afresh on load.
//  20. Inode numbers (Kernel.Ino): each device directory gets the next
//     number when it is registered, so a device registered again under an
//     old name has a new one, as kernfs's cyclic 64-bit ids give. Only
//     device directories are numbered; other paths answer EINVAL.
//  21. Capacity order (docs/kernel.md#config-order, steps 4-6). Which
//     parts are captured and which are read from the source:
//     - DPA is allocated only on a port's next decoder (hdm_end + 1) and
//     freed only from its highest allocated one (cxl_dpa_free: EBUSY
//     otherwise): source (hdm.c), not captured, the captured QEMU 7.2
//     device has one decoder per component (endpoint.go).
//     - Decoders commit in id order (commit_end + 1, else EBUSY "out of
//     order commit"): source, the errno inferred; the reap lines of an
//     in-order reset are captured (C61, C68, C74).
//     - A port maps regions in increasing HPA order (alloc_region_ref:
//     "HPA order violation", EBUSY), with the new region at the lowest
//     free 256 MiB aligned range of its window: source.
//     - The host bridge decoder a region gets (match_free_decoder): on
//     6.1 the lowest one without a region, so a free decoder below a
//     committed one fails at commit (EBUSY); on 6.12 only commit_end + 1,
//     and only while every decoder below it is still committed, else the
//     attach fails (EBUSY, "unable to allocate decoderN.M due to out of
//     order shutdown"). Source, not captured: which kernel first carries
//     the commit_end + 1 choice (upstream after the "permit out-of-order
//     decoder shutdown" change that brought the reap of choice 12) and
//     whether Debian's 6.12 has it is inferred; both variants refuse the
//     same creates, one at commit, one at attach, and the daemon's planner
//     refuses them before writing (internal/region/order.go). The QEMU
//     suite's capacity boot runs the sequence on the real kernels.
//     - Upstream v6.1 refused an out-of-order decoder reset with EBUSY
//     (a delete of a region below a committed one left its decoders
//     enabled); the model resets as 6.12 does on both profiles (choice
//     12), and the QEMU suite's capacity boot agrees for Debian's 6.1.0-56
//     (6.1.192): deleting the 2nd and 1st of four committed regions gave
//     0 WARNING, and every byte came back once the regions above went
//     (observed end to end, not captured line by line).
//  22. The fixed kernel (ProfileFixed, "6.12-fixed") is INFERRED, not
//     captured: from the upstream fix's description (deletion blocked
//     during region creation; concurrent or double deletes safe) and one
//     newest-kernel observation (the loser of two deletes gets ENODEV, no
//     WARNING), since confirmed for double deletes on Debian's 6.12.118
//     (test/e2e/qemu/RESULTS.md, raw-committed: ENODEV to the loser 100
//     of 100, 0 WARNING); the wait for auto-assembly is still inferred.
//     The model's delete_region_store marks the region as being
//     deleted at lookup, so a second deleter gets ENODEV at once; a region
//     under auto-assembly is waited for (polled every millisecond) and
//     then deleted; a region whose devres entry cxl_acpi's teardown took
//     meanwhile is ENODEV. The delete delay is unchanged, so timing is the
//     unpatched kernel's. Everything else, the nd registration oops
//     included (libnvdimm, not the fix), is 6.12's.
//  23. System RAM (memory.go; lab runs on both kernels, docs/kernel.md#system-ram):
//     dax kmem bind/unbind on bus/dax/drivers, devices/system/memory with
//     128 MiB blocks (block_size_bytes, auto_online_blocks: "offline" on
//     6.1, "online" on 6.12, as captured), memoryN/state, phys_index,
//     valid_zones and a nodeN link; a region's node is 1 + its window's
//     index (the lab's one window was node 1: inferred for the others).
//     kmem adds only blocks wholly inside the range and onlines them
//     (ZONE_NORMAL) unless auto-online is off; ReconfigureSystemRAM does
//     daxctl's steps and refuses with EBUSY under auto-online (captured).
//     A teardown with a block online succeeds with no WARNING and the
//     captured "removing memory fails" and "cannot be hotremoved" lines;
//     the block stays online and its range claimed (a LEAK finding; the
//     next region lands above it), and once the decoders stop decoding
//     the range (delete, commit 0) a CORRUPTION finding: the lab read
//     zeros back, nothing in the kernel log says so. Both are the model's
//     own lines (`cxlsim: LEAK:`, `cxlsim: CORRUPTION:`), one per
//     teardown, counted by MemoryFindings. Offline: a ZONE_MOVABLE block
//     always migrates (the lab never saw EBUSY there); PinMemory on a
//     ZONE_NORMAL block gives EBUSY with the captured page dump;
//     StallOffline loops until the writer is signalled (EINTR, as with
//     node 0 full in the lab; WriteFileContext is the signal). Offline
//     takes no time unless InjectDelay says so (the lab: 0.1-25 s).
package cxlsim
