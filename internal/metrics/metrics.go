package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cxlregion/cxlregiond/internal/region"
)

const namespace = "cxlregiond"

// DefaultAddr is the listener of the metrics endpoint: loopback, because
// the metrics tell which regions exist and how the daemon is doing, and an
// operator opens them wider on purpose.
const DefaultAddr = "127.0.0.1:9477"

// Source is what the scrape-time collector reads: the engine.
type Source interface {
	Regions() []region.RegionInfo
	RootDecoders() []region.RootDecoderInfo
}

// Options configures New.
type Options struct {
	// Version is the daemon's version for cxlregiond_build_info; "" reports
	// "unknown".
	Version string
	// Source, when set, is read on every scrape for the region, frozen-writer
	// and queue-depth gauges. SetSource sets it later, for a daemon that
	// must create the Metrics (its ObserveWrite) before the engine.
	Source Source
	// Logger receives errors of the HTTP handler; nil discards them.
	Logger *slog.Logger
}

// Metrics owns the private registry and every collector of the daemon.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	operations       *prometheus.CounterVec
	operationSeconds *prometheus.HistogramVec
	duplicateDeletes prometheus.Counter
	writes           *prometheus.CounterVec
	writeSeconds     *prometheus.HistogramVec
	uevents          *prometheus.CounterVec
	resyncs          *prometheus.CounterVec
	rescans          *prometheus.CounterVec
	journalErrors    *prometheus.CounterVec
	guardOpens       *prometheus.CounterVec
	guardActive      prometheus.Gauge
	subscriberResync prometheus.Counter
}

// Operations wait for settling and for the writer (seconds to a minute);
// the fast ones are a few sysfs writes (milliseconds).
var operationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// A sysfs store takes microseconds unless it waits for the kernel's region
// rwsem or a driver's probe/remove.
var writeBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// New builds the registry. It panics only on a programming error in the
// metric definitions (a duplicate registration), as promauto does.
func New(opts Options) *Metrics {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: log,
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "operations_total",
			Help: "Engine operations (create, delete, enable, disable) by result.",
		}, []string{"operation", "result"}),
		operationSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "operation_duration_seconds",
			Help:    "Time from an engine operation's request to its result, waits for settling and the writer included.",
			Buckets: operationBuckets,
		}, []string{"operation"}),
		duplicateDeletes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "duplicate_deletes_suppressed_total",
			Help: "Delete requests that joined a delete in flight or named a generation already gone, so no second delete_region write was made.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sysfs_writes_total",
			Help: "sysfs attribute writes by attribute and result (ok or the kernel's errno name).",
		}, []string{"attribute", "result"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "sysfs_write_duration_seconds",
			Help:    "Duration of one sysfs attribute write (open, write, close).",
			Buckets: writeBuckets,
		}, []string{"attribute"}),
		uevents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "uevents_total",
			Help: "Kernel uevents received for the CXL tree, by action.",
		}, []string{"action"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "uevent_resyncs_total",
			Help: "Uevent losses (socket overflow, sequence gap) that forced a full rescan.",
		}, []string{"reason"}),
		rescans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rescans_total",
			Help: "Full rescans of the CXL sysfs tree, by reason.",
		}, []string{"reason"}),
		journalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "journal_errors_total",
			Help: "Intent journal records that could not be written or synced, by what needed them; the operation failed and no new one starts until the journal is rewritten.",
		}, []string{"operation"}),
		guardOpens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "guard_opens_total",
			Help: "Opens of guarded CXL files by other processes, by file kind and result (allowed at once, waited for the writers, passed as the writers' holder, refused).",
		}, []string{"kind", "result"}),
		guardActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "guard_active",
			Help: "1 while the fanotify guard holds other processes' opens of every guarded CXL control file (0 when off, stopped, or a file could not be marked).",
		}),
		subscriberResync: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "event_subscriber_resyncs_total",
			Help: "Times an engine event subscriber (the D-Bus service, this metrics follower, the guard) fell more than its queue bound behind: its queued events were dropped and it re-read the model.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.operations, m.operationSeconds, m.duplicateDeletes,
		m.writes, m.writeSeconds,
		m.uevents, m.resyncs, m.rescans, m.journalErrors,
		m.guardOpens, m.guardActive, m.subscriberResync,
	)
	if opts.Source != nil {
		m.reg.MustRegister(newSnapshotCollector(opts.Source))
	}
	m.initSeries()
	return m
}

// SetSource starts reading src on every scrape. The write observer has to
// exist before the lock registry, and the registry before the engine, so
// the engine usually arrives after New. A second source is an error: its
// series would collide with the first one's.
func (m *Metrics) SetSource(src Source) error {
	if err := m.reg.Register(newSnapshotCollector(src)); err != nil {
		return fmt.Errorf("metrics source: %w", err)
	}
	return nil
}

// initSeries creates the series of every known label value at zero, so that
// rate() and absent() work from the first scrape instead of from the first
// event of each kind.
func (m *Metrics) initSeries() {
	for _, op := range operations {
		m.operationSeconds.WithLabelValues(op)
		for _, r := range results {
			m.operations.WithLabelValues(op, string(r))
		}
	}
	for _, a := range attributes {
		m.writes.WithLabelValues(a, "ok")
		m.writeSeconds.WithLabelValues(a)
	}
	for _, a := range ueventActions {
		m.uevents.WithLabelValues(string(a))
	}
	for _, r := range rescanReasons {
		m.rescans.WithLabelValues(r)
	}
	for _, r := range resyncReasons {
		m.resyncs.WithLabelValues(r)
	}
	for _, op := range journalOperations {
		m.journalErrors.WithLabelValues(op)
	}
	for _, k := range guardKinds {
		for _, r := range guardResults {
			m.guardOpens.WithLabelValues(k, r)
		}
	}
}

// Handler serves the registry in the Prometheus exposition formats, with
// promhttp's own request and error counters.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg,
		EnableOpenMetrics: true,
	}))
}

// ObserveWrite records one sysfs write. Its signature is the one
// lock.WithWriteObserver takes.
func (m *Metrics) ObserveWrite(attr string, d time.Duration, err error) {
	a := attributeLabel(attr)
	m.writes.WithLabelValues(a, writeResultLabel(err)).Inc()
	m.writeSeconds.WithLabelValues(a).Observe(d.Seconds())
}

// ObserveSubscriberResync records one subscriber queue dropped for a
// resync; it is region.Config.OnSubscriberOverflow.
func (m *Metrics) ObserveSubscriberResync() { m.subscriberResync.Inc() }

// ObserveGuard records one open of a guarded file by another process. Its
// signature is guard.Config.Observer's: kind is a guard.Kind's String,
// result one of guard.ResultAllowed, ResultWaited, ResultPassed,
// ResultRefused.
func (m *Metrics) ObserveGuard(kind, result string) {
	m.guardOpens.WithLabelValues(oneOf(kind, guardKinds), oneOf(result, guardResults)).Inc()
}

// SetGuardActive reports whether the guard holds every guarded file's opens
// (guard.Guard.Active).
func (m *Metrics) SetGuardActive(active bool) {
	if active {
		m.guardActive.Set(1)
	} else {
		m.guardActive.Set(0)
	}
}
