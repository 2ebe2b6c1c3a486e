package cxlsim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// TestPropertyInvariants runs random operation sequences (create
// handshakes and stale creates, configuration writes, endpoint mode and
// DPA writes, commits, binds, unbinds, deletes, auto-assembly, cxl_acpi
// unbind and bind, cxl_port unbind) and checks after every step what the
// kernel guarantees whatever userspace does:
//   - no two live regions share an id, and no id is both cached and owned;
//   - an endpoint decoder belongs to at most one region, and its region
//     link agrees with the region's targets;
//   - a root decoder's allocated HPA ranges do not overlap and stay in the
//     window;
//   - DPA allocations stay inside their memdev's partitions and never
//     overlap;
//   - every remove uevent of a region follows its add;
//   - sysfs.Scan of the tree succeeds.
func TestPropertyInvariants(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		profile := rapid.SampledFrom([]string{Profile61, Profile612}).Draw(rt, "profile")
		k, err := New(WithProfile(profile), WithRegisterDelay(0), WithDeleteDelay(0), WithTeardownDelay(0),
			WithRebindDelay(0), WithAssembleDuration(time.Millisecond), WithLogLines(1000))
		if err != nil {
			rt.Fatal(err)
		}
		defer k.Close()
		sub := k.Subscribe(100000)
		defer sub.Close()
		fs := sysfs.New(k)
		roots := []string{"decoder0.0", "decoder0.1", "decoder0.2", "decoder0.3"}
		var eds []string
		for e := 3; e <= 10; e++ {
			for j := 0; j < 4; j++ {
				eds = append(eds, fmt.Sprintf("decoder%d.%d", e, j))
			}
		}
		// Mostly live regions, sometimes any name.
		regionName := func(rt *rapid.T) string {
			k.mu.Lock()
			var live []string
			for _, r := range k.st.Regions {
				live = append(live, r.Name)
			}
			k.mu.Unlock()
			if len(live) == 0 || rapid.IntRange(0, 4).Draw(rt, "any") == 0 {
				return fmt.Sprintf("region%d", rapid.IntRange(0, 9).Draw(rt, "region"))
			}
			return rapid.SampledFrom(sortedStrings(live)).Draw(rt, "live")
		}
		write := func(p, v string) { _ = fs.Write(p, v) }
		// A small pool of endpoint decoders makes regions compete for them.
		pool := []string{"decoder3.0", "decoder3.1", "decoder4.0", "decoder7.0", "decoder7.1", "decoder8.0"}
		ops := map[string]func(*rapid.T){
			"create": func(rt *rapid.T) {
				rd := rapid.SampledFrom(append([]string{"decoder0.0", "decoder0.0"}, roots...)).Draw(rt, "root")
				typ := rapid.SampledFrom([]string{"pmem", "pmem", "ram"}).Draw(rt, "type")
				if name, err := fs.ReadString(dev + rd + "/create_" + typ + "_region"); err == nil {
					write(dev+rd+"/create_"+typ+"_region", name)
				}
			},
			"staleCreate": func(rt *rapid.T) {
				write(dev+rapid.SampledFrom(roots).Draw(rt, "root")+"/create_pmem_region", regionName(rt))
			},
			"uuid": func(rt *rapid.T) {
				write(dev+regionName(rt)+"/uuid", fmt.Sprintf("%08d-1111-4222-8333-444444444444", rapid.IntRange(0, 3).Draw(rt, "u")))
			},
			"gran": func(rt *rapid.T) {
				write(dev+regionName(rt)+"/interleave_granularity", rapid.SampledFrom([]string{"256", "512", "100"}).Draw(rt, "g"))
			},
			"ways": func(rt *rapid.T) {
				write(dev+regionName(rt)+"/interleave_ways", rapid.SampledFrom([]string{"1", "2", "4", "3"}).Draw(rt, "w"))
			},
			"size": func(rt *rapid.T) {
				write(dev+regionName(rt)+"/size", fmt.Sprint(uint64(rapid.IntRange(0, 20).Draw(rt, "s"))*sz256M))
			},
			"target": func(rt *rapid.T) {
				v := rapid.SampledFrom(append(append([]string{""}, pool...), eds...)).Draw(rt, "ed")
				write(dev+regionName(rt)+fmt.Sprintf("/target%d", rapid.IntRange(0, 3).Draw(rt, "pos")), v)
			},
			"mode": func(rt *rapid.T) {
				write(dev+rapid.SampledFrom(eds).Draw(rt, "ed")+"/mode", rapid.SampledFrom([]string{"ram", "pmem"}).Draw(rt, "m"))
			},
			"dpa": func(rt *rapid.T) {
				write(dev+rapid.SampledFrom(eds).Draw(rt, "ed")+"/dpa_size", fmt.Sprint(uint64(rapid.IntRange(0, 9).Draw(rt, "d"))*sz256M))
			},
			"commit": func(rt *rapid.T) {
				write(dev+regionName(rt)+"/commit", rapid.SampledFrom([]string{"0", "1"}).Draw(rt, "c"))
			},
			"bind":   func(rt *rapid.T) { write(sysfs.RegionBindPath, regionName(rt)) },
			"unbind": func(rt *rapid.T) { write(sysfs.RegionUnbindPath, regionName(rt)) },
			"delete": func(rt *rapid.T) {
				write(dev+rapid.SampledFrom(roots).Draw(rt, "root")+"/delete_region", regionName(rt))
			},
			"assemble": func(rt *rapid.T) {
				n := rapid.SampledFrom([]int{1, 2}).Draw(rt, "ways")
				var targets []string
				for i := 0; i < n; i++ {
					targets = append(targets, rapid.SampledFrom(eds).Draw(rt, "t"))
				}
				_, _ = k.AutoAssemble(context.Background(), AssembleSpec{
					RootDecoder: rapid.SampledFrom(roots).Draw(rt, "root"),
					Mode:        rapid.SampledFrom([]string{"pmem", "ram"}).Draw(rt, "mode"),
					Targets:     targets, Size: uint64(n) * sz256M,
				})
			},
			"configure": func(rt *rapid.T) {
				mode := rapid.SampledFrom([]string{"pmem", "pmem", "ram"}).Draw(rt, "mode")
				name := regionName(rt)
				if rapid.Bool().Draw(rt, "new") {
					// A fresh region on a window that allows mode.
					rd := rapid.SampledFrom(map[string][]string{"pmem": {"decoder0.0", "decoder0.0", "decoder0.1", "decoder0.3"},
						"ram": {"decoder0.2", "decoder0.3"}}[mode]).Draw(rt, "root")
					if n, err := fs.ReadString(dev + rd + "/create_" + mode + "_region"); err == nil && fs.Write(dev+rd+"/create_"+mode+"_region", n) == nil {
						name = n
					}
				}
				ways := rapid.SampledFrom([]int{1, 1, 2}).Draw(rt, "ways")
				per := uint64(rapid.SampledFrom([]int{1, 1, 2}).Draw(rt, "per")) * sz256M
				write(dev+name+"/uuid", fmt.Sprintf("%08d-1111-4222-8333-444444444444", rapid.IntRange(0, 99).Draw(rt, "u")))
				write(dev+name+"/interleave_granularity", "256")
				write(dev+name+"/interleave_ways", fmt.Sprint(ways))
				write(dev+name+"/size", fmt.Sprint(per*uint64(ways)))
				for pos := 0; pos < ways; pos++ {
					ed := rapid.SampledFrom(pool).Draw(rt, "ed")
					write(dev+ed+"/dpa_size", "0")
					write(dev+ed+"/mode", mode)
					write(dev+ed+"/dpa_size", fmt.Sprint(per))
					write(dev+name+fmt.Sprintf("/target%d", pos), ed)
				}
			},
			// cxl_acpi unbind, then (mostly) bind again: the tree comes
			// back without its regions.
			"acpiUnbindBind": func(rt *rapid.T) {
				write(sysfs.ACPIUnbindPath, acpiName)
				if rapid.IntRange(0, 3).Draw(rt, "stay") > 0 {
					write(sysfs.ACPIBindPath, acpiName)
					for i := 0; i < 1000; i++ {
						if _, err := fs.ReadString(dev + "decoder10.3/mode"); err == nil {
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
			},
			"acpiBind": func(rt *rapid.T) {
				write(sysfs.ACPIBindPath, acpiName)
				time.Sleep(2 * time.Millisecond)
			},
			"portUnbind": func(rt *rapid.T) {
				if rapid.IntRange(0, 4).Draw(rt, "rare") == 0 {
					write(sysfs.PortUnbindPath, rapid.SampledFrom([]string{"port1", "port2", "endpoint3", "endpoint8"}).Draw(rt, "port"))
				}
			},
			"settle": func(rt *rapid.T) { time.Sleep(time.Millisecond) },
		}
		var seen []uevent.Event
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for i := range steps {
			name := rapid.SampledFrom(opNames(ops)).Draw(rt, "op")
			ops[name](rt)
			checkInvariants(rt, k)
			seen = append(seen, drainNow(sub)...)
			checkRegionEvents(rt, seen)
			if i%8 == 7 || i == steps-1 { // Scan is the slow part under -race
				if _, err := fs.Scan(); err != nil {
					rt.Fatalf("scan after %s: %v", name, err)
				}
			}
		}
	})
}

func sortedStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func opNames(m map[string]func(*rapid.T)) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	// rapid needs a stable order to shrink.
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	return names
}

func drainNow(s uevent.Source) []uevent.Event {
	var out []uevent.Event
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		e, err := s.Receive(ctx)
		if err != nil {
			return out
		}
		out = append(out, e)
	}
}

func checkRegionEvents(rt *rapid.T, evs []uevent.Event) {
	live := map[string]bool{}
	for _, e := range evs {
		if e.DevType != "cxl_region" {
			continue
		}
		switch e.Action {
		case uevent.Add:
			if live[e.DevPath] {
				rt.Fatalf("second add of %s without a remove", e.DevPath)
			}
			live[e.DevPath] = true
		case uevent.Remove:
			if !live[e.DevPath] {
				rt.Fatalf("remove of %s before its add", e.DevPath)
			}
			live[e.DevPath] = false
		}
	}
}

func checkInvariants(rt *rapid.T, k *Kernel) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ids := map[int]string{}
	for _, rd := range k.st.RootDecoders {
		if rd.CachedID < 0 {
			continue
		}
		if o, dup := ids[rd.CachedID]; dup {
			rt.Fatalf("id %d cached by %s and %s", rd.CachedID, rd.Name, o)
		}
		ids[rd.CachedID] = rd.Name
		if !k.idaUsed(rd.CachedID) {
			rt.Fatalf("%s caches id %d the IDA does not hold", rd.Name, rd.CachedID)
		}
	}
	owner := map[string]string{}
	for _, r := range k.st.Regions {
		if o, dup := ids[r.ID]; dup {
			rt.Fatalf("region id %d of %s also held by %s", r.ID, r.Name, o)
		}
		ids[r.ID] = r.Name
		if !k.idaUsed(r.ID) {
			rt.Fatalf("%s: id %d not in the IDA", r.Name, r.ID)
		}
		n := 0
		for _, name := range r.Targets {
			if name == "" {
				continue
			}
			n++
			if o, dup := owner[name]; dup {
				rt.Fatalf("%s is a target of %s and %s", name, o, r.Name)
			}
			owner[name] = r.Name
			if k.eds[name].Region != r.Name {
				rt.Fatalf("%s in %s's targets but its region is %q", name, r.Name, k.eds[name].Region)
			}
		}
		if n != r.NrTargets {
			rt.Fatalf("%s: %d targets, nr_targets %d", r.Name, n, r.NrTargets)
		}
	}
	for _, ed := range k.st.Endpoint {
		if ed.Region != "" && owner[ed.Name] != ed.Region {
			rt.Fatalf("%s says region %s, which does not list it", ed.Name, ed.Region)
		}
	}
	for _, rd := range k.st.RootDecoders {
		w := k.st.Topology.RootDecoders[rd.Index]
		var rs []hpa
		for _, r := range k.st.Regions {
			if r.RootDecoder != rd.Name {
				continue
			}
			for _, h := range []*hpa{r.Res, r.AssemblyRes} {
				if h == nil || (h == r.AssemblyRes && r.Res != nil) {
					continue
				}
				if h.Start < uint64(w.Start) || h.Start+h.Size > uint64(w.Start)+uint64(w.Size) {
					rt.Fatalf("%s: HPA %#x+%#x outside %s", r.Name, h.Start, h.Size, rd.Name)
				}
				for _, o := range rs {
					if h.Start < o.Start+o.Size && o.Start < h.Start+h.Size {
						rt.Fatalf("%s: HPA %#x+%#x overlaps %#x+%#x", r.Name, h.Start, h.Size, o.Start, o.Size)
					}
				}
				rs = append(rs, *h)
			}
		}
	}
	for i, m := range k.st.Topology.Memdevs {
		var allocs []*dpaAlloc
		for _, ed := range k.st.Endpoint {
			if ed.Memdev == i && ed.DPA != nil {
				allocs = append(allocs, ed.DPA)
			}
		}
		var ram, pmem uint64
		for j, a := range allocs {
			lo, hi := uint64(0), uint64(m.RAMSize)
			if a.Mode == "pmem" {
				lo, hi = uint64(m.RAMSize), uint64(m.RAMSize)+uint64(m.PmemSize)
				pmem += a.Size
			} else {
				ram += a.Size
			}
			if a.Start < lo || a.Start+a.Size > hi {
				rt.Fatalf("mem%d: %s DPA %#x+%#x outside its partition", i, a.Mode, a.Start, a.Size)
			}
			for _, b := range allocs[:j] {
				if a.Start < b.Start+b.Size && b.Start < a.Start+a.Size {
					rt.Fatalf("mem%d: DPA allocations overlap", i)
				}
			}
		}
		if ram > uint64(m.RAMSize) || pmem > uint64(m.PmemSize) {
			rt.Fatalf("mem%d: %d ram %d pmem allocated over capacity", i, ram, pmem)
		}
	}
}
