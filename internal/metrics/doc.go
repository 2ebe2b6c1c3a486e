// Package metrics exports the engine's behaviour as Prometheus metrics on a
// private registry, served by promhttp on a loopback listener by default
// (DefaultAddr, 127.0.0.1:9477).
//
// The registry holds the Go and process collectors and the metrics below.
// Every label takes its value from a small fixed set, so no series is ever
// created per region, uuid or error message: a value outside the set is
// reported as "other". Root decoder names are the one open-ended label, and
// they are bounded by the host's hardware (a few CXL windows); their series
// are recomputed from the engine on every scrape, so a root decoder that goes
// away leaves no stale series.
//
//	cxlregiond_build_info{version,goversion}                        gauge, always 1
//	cxlregiond_regions{root_decoder,state,type}                     gauge, regions the engine knows (scrape time)
//	cxlregiond_writer_frozen{root_decoder}                          gauge, 1 while the root decoder's writer is frozen (scrape time)
//	cxlregiond_writer_queue_depth{root_decoder}                     gauge, requests waiting for the writer (scrape time)
//	cxlregiond_memdev_capacity_bytes{memdev,kind}                   gauge, device capacity per memdev from sysfs (scrape time)
//	cxlregiond_online_memory_bytes{root_decoder,zone}               gauge, the regions' memory online as System RAM (scrape time)
//	cxlregiond_operations_total{operation,result}                   counter, finished engine operations
//	cxlregiond_operation_duration_seconds{operation}                histogram, engine operation latency
//	cxlregiond_duplicate_deletes_suppressed_total                   counter, delete requests joined to one in flight or already done
//	cxlregiond_sysfs_writes_total{attribute,result}                 counter, sysfs attribute writes
//	cxlregiond_sysfs_write_duration_seconds{attribute}              histogram, sysfs write latency
//	cxlregiond_uevents_total{action}                                counter, kernel uevents received
//	cxlregiond_uevent_resyncs_total{reason}                         counter, uevent losses that forced a rescan
//	cxlregiond_rescans_total{reason}                                counter, full rescans of the CXL tree
//	cxlregiond_journal_errors_total{operation}                      counter, intent journal records that could not be written or synced
//	cxlregiond_guard_opens_total{kind,result}                       counter, opens by other processes held by the guard
//	cxlregiond_guard_active                                         gauge, 1 while the fanotify guard holds the opens of every guarded file
//	cxlregiond_event_subscriber_resyncs_total                       counter, event subscribers that fell behind their queue bound and re-read the model
//
// Label values:
//
//	operation     create, delete, enable, disable
//	result        (operations) ok, not_found, busy, frozen, invalid, timeout,
//	              kernel_error, canceled, error
//	result        (sysfs writes) ok, the errno name (EBUSY, ENXIO, ENODEV, ...),
//	              or error for a failure without an errno
//	attribute     create_pmem_region, create_ram_region, delete_region, uuid,
//	              size, interleave_ways, interleave_granularity, commit,
//	              target (any targetN), mode, dpa_size, bind, unbind,
//	              state (a memory block's, offlined or put back online)
//	state         configuring, committed, enabled, deleting
//	type          pmem, ram
//	kind          total, allocated, free, stranded (allocated to an endpoint
//	              decoder whose region was deleted below another region: the
//	              kernel frees it only from the top, the daemon when the
//	              regions above go)
//	memdev        memN (bounded by the hardware), else other
//	zone          movable, normal
//	action        add, remove, change, move, online, offline, bind, unbind
//	reason        (rescans) startup, overflow, gap, request, periodic, thaw
//	reason        (resyncs) overflow, gap
//	operation     (journal errors) create, delete, recover, generation, close
//	kind          (guard) delete_region, create_region, cxl_region_driver,
//	              cxl_acpi_driver, cxl_port_driver
//	result        (guard) allowed, waited, passed, refused
//
// Inputs: ObserveWrite is the lock package's write observer
// (lock.WithWriteObserver), Follow consumes the engine's events
// (Engine.Subscribe), a Source (the engine) is read at scrape time,
// ObserveGuard is the guard's observer (guard.Config.Observer) and
// SetGuardActive says whether the guard holds every guarded file's opens. In the daemon:
//
//	m := metrics.New(metrics.Options{Version: api.Version, Logger: log})
//	writers := lock.NewRegistry(..., lock.WithWriteObserver(m.ObserveWrite))
//	engine, _ := region.New(region.Config{Writers: writers, ...})
//	m.SetSource(engine)
//	events, stop := engine.Subscribe(ctx); go m.Follow(ctx, events)
//	guard.Config{Observer: m.ObserveGuard, ...}; g.Update(roots); m.SetGuardActive(g.Active())
//	go m.Serve(ctx, addr) // "" is DefaultAddr
package metrics
