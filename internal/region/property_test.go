package region

import (
	"context"
	"errors"
	"flag"
	"slices"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestRandomClientsAndForeignActors mixes, concurrently, the daemon's
// clients (create, delete with current and stale generations, enable,
// disable, rescan) with foreign actors (another tool's raw creates and
// deletes, made through the guard's rule of holding the writer, and the
// kernel's auto-assembly). Whatever the mix: the simulated kernel prints no
// WARNING and no BUG, every error is one of the engine's kinds, and the
// model converges to sysfs.
//
// Mutation: drop the coalescing in Engine.coalesce, or the settle wait, and
// runs go red (WARNING from overlapping deletes, BUG from deletes into
// registration or assembly).
//
// It runs on the unpatched 6.12 model and on the fixed kernel's
// (cxlsim.ProfileFixed): the daemon works unchanged where the kernel no
// longer races.
func TestRandomClientsAndForeignActors(t *testing.T) {
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == "100" {
		_ = f.Value.Set("15")
	}
	for _, profile := range []string{cxlsim.Profile612, cxlsim.ProfileFixed} {
		t.Run(profile, func(t *testing.T) { randomClientsAndForeignActors(t, profile) })
	}
}

func randomClientsAndForeignActors(t *testing.T, profile string) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t, cxlsim.WithProfile(profile), cxlsim.WithAssembleDuration(40*time.Millisecond))
		eng := h.start(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		type op struct {
			kind   string
			root   string
			index  int
			stale  bool
			noBind bool
		}
		roots := []string{"decoder0.0", "decoder0.1"}
		genOp := rapid.Custom(func(t *rapid.T) op {
			return op{
				kind:   rapid.SampledFrom([]string{"create", "create", "delete", "delete", "delete", "enable", "disable", "rescan", "foreign-create", "foreign-delete", "assemble"}).Draw(t, "kind"),
				root:   rapid.SampledFrom(roots).Draw(t, "root"),
				index:  rapid.IntRange(0, 7).Draw(t, "index"),
				stale:  rapid.Bool().Draw(t, "stale"),
				noBind: rapid.Bool().Draw(t, "noBind"),
			}
		})
		actors := rapid.SliceOfN(rapid.SliceOfN(genOp, 1, 6), 2, 4).Draw(rt, "actors")

		var mu sync.Mutex
		var unexpected []error
		check := func(err error) {
			var ke *KernelError
			if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBusy) || errors.Is(err, ErrInvalid) ||
				errors.Is(err, ErrTimeout) || errors.Is(err, ErrFrozen) || errors.As(err, &ke) {
				return
			}
			mu.Lock()
			unexpected = append(unexpected, err)
			mu.Unlock()
		}
		pick := func(i int) (RegionInfo, bool) {
			regs := eng.Regions()
			if len(regs) == 0 {
				return RegionInfo{}, false
			}
			return regs[i%len(regs)], true
		}
		// underWriter is the guard's rule for a foreign opener.
		underWriter := func(root string, f func()) {
			w, err := h.writers.Writer(root)
			if err != nil {
				return
			}
			held, err := w.Acquire(ctx)
			if err != nil {
				return
			}
			defer held.Release()
			f()
		}
		run := func(o op) {
			switch o.kind {
			case "create":
				_, err := eng.Create(ctx, CreateRequest{RootDecoder: o.root, Type: "pmem", Size: 512 << 20, NoBind: o.noBind})
				check(err)
			case "delete":
				if r, ok := pick(o.index); ok {
					gen := r.Generation
					if o.stale {
						gen--
					}
					check(eng.Delete(ctx, DeleteRequest{Name: r.Name, Generation: gen}))
				}
			case "enable":
				if r, ok := pick(o.index); ok {
					check(eng.Enable(ctx, r.Name))
				}
			case "disable":
				if r, ok := pick(o.index); ok {
					check(eng.Disable(ctx, r.Name))
				}
			case "rescan":
				check(eng.Rescan(ctx))
			case "foreign-create":
				underWriter("decoder0.0", func() { foreignCreate(h, "decoder0.0") })
			case "foreign-delete":
				if r, ok := pick(o.index); ok {
					underWriter(r.RootDecoder, func() {
						// Another tool is not careful about settling, but the
						// guard holds delete_region opens until the root's
						// regions have settled.
						if eng.WaitRootSettled(ctx, r.RootDecoder) == nil {
							_ = h.fs.Write(sysfs.RegionUnbindPath, r.Name)
							_ = h.fs.Write(attrPathOrInvalid(r.RootDecoder, "delete_region"), r.Name)
						}
					})
				}
			case "assemble":
				if ed := freeDecoderOn(h, "port1"); ed != "" {
					_, _ = h.k.AutoAssemble(ctx, cxlsim.AssembleSpec{RootDecoder: "decoder0.0", Mode: "pmem", Targets: []string{ed}, Size: 256 << 20})
				}
			}
		}
		var wg sync.WaitGroup
		for _, ops := range actors {
			wg.Go(func() {
				for _, o := range ops {
					run(o)
				}
			})
		}
		wg.Wait()
		if warn, bug := h.counts(); warn != 0 || bug != 0 {
			rt.Fatalf("simulated kernel printed %d WARNING, %d BUG:\n%s", warn, bug, lastLines(h.k.Log(), 400))
		}
		if len(unexpected) > 0 {
			rt.Fatalf("errors of no known kind: %v", unexpected)
		}
		if err := eng.Rescan(ctx); err != nil {
			rt.Fatal(err)
		}
		topo, err := h.fs.Scan()
		if err != nil {
			rt.Fatal(err)
		}
		var want, got []string
		for _, r := range topo.Regions {
			want = append(want, r.Name)
		}
		for _, r := range eng.Regions() {
			got = append(got, r.Name)
		}
		if !slices.Equal(want, got) {
			rt.Fatalf("model %v, sysfs %v", got, want)
		}
		h.shutdown()
	})
}

// foreignCreate is another tool making a 256 MiB pmem region on the first
// free decoder of the root's host bridge, raw.
func foreignCreate(h *harness, root string) {
	ed := freeDecoderOn(h, "port1")
	if ed == "" {
		return
	}
	name, err := h.fs.NextRegionName(root, "pmem")
	if err != nil {
		return
	}
	for _, w := range [][2]string{
		{attrPathOrInvalid(root, "create_pmem_region"), name},
		{attrPathOrInvalid(name, "interleave_granularity"), "256"},
		{attrPathOrInvalid(name, "interleave_ways"), "1"},
		{attrPathOrInvalid(name, "uuid"), newUUID()},
		{attrPathOrInvalid(name, "size"), "268435456"},
		{attrPathOrInvalid(ed, "mode"), "pmem"},
		{attrPathOrInvalid(ed, "dpa_size"), "268435456"},
		{attrPathOrInvalid(name, "target0"), ed},
		{attrPathOrInvalid(name, "commit"), "1"},
	} {
		if err := h.fs.Write(w[0], w[1]); err != nil {
			return
		}
	}
}

// freeDecoderOn finds an endpoint decoder below a host bridge that the
// kernel would let a new region use: unattached, unallocated, the lowest
// such on its port, on a memdev no other free pick has.
func freeDecoderOn(h *harness, hostBridge string) string {
	topo, err := h.fs.Scan()
	if err != nil {
		return ""
	}
	p := &createPlan{root: sysfs.RootDecoder{Targets: []string{hostBridge}}, typ: "pmem", size: 256 << 20, ways: 1}
	eds, err := pickTargets(nil, p, topo, newOrderView(topo))
	if err != nil || len(eds) == 0 {
		return ""
	}
	return eds[0].Name
}
