package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlregion/cxlregiond/internal/region"
)

// capacitySource is a Source that also reads device capacity (the engine);
// sources without it report no capacity series.
type capacitySource interface {
	Capacity() ([]region.MemdevCapacity, error)
}

// capacityKinds are the values of the kind label of
// cxlregiond_memdev_capacity_bytes.
var capacityKinds = []string{"total", "allocated", "free", "stranded"}

// snapshotCollector turns the engine's model into gauges at scrape time.
// Reading the model when asked, instead of keeping gauges in step with
// events, means a missed or reordered event can never leave a gauge wrong,
// and a root decoder that goes away leaves no stale series.
type snapshotCollector struct {
	src        Source
	regions    *prometheus.Desc
	frozen     *prometheus.Desc
	queueDepth *prometheus.Desc
	capacity   *prometheus.Desc
	onlineMem  *prometheus.Desc
}

func newSnapshotCollector(src Source) *snapshotCollector {
	return &snapshotCollector{
		src: src,
		regions: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "", "regions"),
			"Regions the engine knows, by root decoder, state and type.",
			[]string{"root_decoder", "state", "type"}, nil),
		frozen: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "writer", "frozen"),
			"1 while the root decoder's writer is frozen (its root is being torn down), else 0.",
			[]string{"root_decoder"}, nil),
		queueDepth: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "writer", "queue_depth"),
			"Requests waiting for the root decoder's writer.",
			[]string{"root_decoder"}, nil),
		capacity: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "memdev", "capacity_bytes"),
			"Device capacity (DPA) per memdev: total, allocated to endpoint decoders, free, and stranded "+
				"(allocated to a decoder whose region was deleted below another region; the kernel frees it "+
				"when the regions above it go).",
			[]string{"memdev", "kind"}, nil),
		onlineMem: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "", "online_memory_bytes"),
			"Bytes of the root decoder's regions online as System RAM, by zone: a region with memory online is not torn down without the offline option.",
			[]string{"root_decoder", "zone"}, nil),
	}
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.regions
	ch <- c.frozen
	ch <- c.queueDepth
	ch <- c.capacity
	ch <- c.onlineMem
}

type regionKey struct{ root, state, typ string }

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	roots := c.src.RootDecoders()
	regions := c.src.Regions()

	counts := make(map[regionKey]int)
	// Every root decoder reports every known state and type, at zero if
	// need be, so that a region leaving a state shows as a drop to 0
	// rather than as a vanished series.
	for _, rd := range roots {
		root := rootDecoderLabel(rd.Name)
		for _, st := range regionStates {
			for _, typ := range regionTypes {
				counts[regionKey{root, string(st), typ}] += 0
			}
		}
	}
	for _, r := range regions {
		counts[regionKey{rootDecoderLabel(r.RootDecoder), oneOf(r.State, regionStates), oneOf(r.Type, regionTypes)}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.regions, prometheus.GaugeValue, float64(n), k.root, k.state, k.typ)
	}

	// Two root decoders folded into "other" must not produce the same
	// series twice, which the registry would reject as a scrape error.
	frozen := make(map[string]float64)
	depth := make(map[string]float64)
	for _, rd := range roots {
		root := rootDecoderLabel(rd.Name)
		if rd.Frozen {
			frozen[root] = 1
		} else {
			frozen[root] += 0
		}
		depth[root] += float64(rd.QueueDepth)
	}
	for root, v := range frozen {
		ch <- prometheus.MustNewConstMetric(c.frozen, prometheus.GaugeValue, v, root)
	}
	for root, v := range depth {
		ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, v, root)
	}

	// Per root decoder, not per region: region names are not a bounded
	// label. Every root decoder reports both zones, at zero if need be.
	type zoneKey struct{ root, zone string }
	online := make(map[zoneKey]float64)
	for _, rd := range roots {
		for _, z := range memoryZones {
			online[zoneKey{rootDecoderLabel(rd.Name), z}] += 0
		}
	}
	for _, r := range regions {
		for _, b := range r.Memory.OnlineBlocks() {
			online[zoneKey{rootDecoderLabel(r.RootDecoder), zoneLabel(b.ValidZones)}] += float64(r.Memory.BlockSize)
		}
	}
	for k, v := range online {
		ch <- prometheus.MustNewConstMetric(c.onlineMem, prometheus.GaugeValue, v, k.root, k.zone)
	}
	c.collectCapacity(ch)
}

func (c *snapshotCollector) collectCapacity(ch chan<- prometheus.Metric) {
	cs, ok := c.src.(capacitySource)
	if !ok {
		return
	}
	caps, err := cs.Capacity()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.capacity, err)
		return
	}
	type key struct{ memdev, kind string }
	sum := make(map[key]float64)
	for _, mc := range caps {
		m := memdevLabel(mc.Memdev)
		for i, v := range []uint64{mc.Total, mc.Allocated, mc.Free, mc.Stranded} {
			sum[key{m, capacityKinds[i]}] += float64(v)
		}
	}
	for k, v := range sum {
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, v, k.memdev, k.kind)
	}
}
