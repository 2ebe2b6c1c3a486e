// Package devname is the one home of the rules for CXL device names: the
// spellings the kernel gives the regions, decoders, memdevs and ports under
// /sys/bus/cxl/devices, which the daemon reads, writes, locks and serves.
//
// The kernel names these devices with dev_set_name("%s%d") or
// ("decoder%d.%d") from non-negative ints it allocates, so an id is decimal,
// has no sign, no leading zero (0 itself is "0") and is at most
// 2147483647. Anything else is not a name the kernel could have printed,
// and the daemon refuses it wherever it takes a name: in a D-Bus argument,
// an object path, a lock file, a sysfs path, a metrics label. Accepting
// "decoder00.0" anywhere would give one root decoder a second name, and
// with it a second lock file and a second writer.
//
// Root, switch and endpoint decoders are all spelled decoder<port>.<index>:
// the name alone does not tell them apart (sysfs's DEVTYPE does).
package devname
