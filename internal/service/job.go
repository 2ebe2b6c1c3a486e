package service

import (
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// startJob runs an operation in the background as a Job object: added
// before the caller gets its path, Completed and its outcome properties
// when done, removed JobGrace later (at once on shutdown). done is called
// when the operation has finished.
func (s *Service) startJob(op operation, uid uint32, done func()) dbus.ObjectPath {
	s.mu.Lock()
	s.nextJob++
	path := api.JobPath(s.nextJob)
	s.mu.Unlock()
	objects := append([]dbus.ObjectPath{}, op.objects...)
	s.tree.update(func(tx *treeTx) {
		tx.set(path, object{api.JobInterface: {
			api.PropOperation:    dbus.MakeVariant(op.kind),
			api.PropObjects:      dbus.MakeVariant(objects),
			api.PropProgress:     dbus.MakeVariant(0.0),
			api.PropStartedByUID: dbus.MakeVariant(uid),
			api.PropCancelable:   dbus.MakeVariant(false),
			api.PropFinished:     dbus.MakeVariant(false),
			api.PropSuccess:      dbus.MakeVariant(false),
			api.PropErrorName:    dbus.MakeVariant(""),
			api.PropMessage:      dbus.MakeVariant(""),
		}})
	})
	op.progress = func(f float64) {
		// Progress short of done; 1 comes with Finished.
		f = min(max(f, 0), 0.99)
		s.tree.update(func(tx *treeTx) {
			tx.patch(path, api.JobInterface, props{api.PropProgress: dbus.MakeVariant(f)})
		})
	}
	go func() {
		defer done()
		result, err := s.run(op, uid)
		changes := props{
			api.PropProgress: dbus.MakeVariant(1.0),
			api.PropFinished: dbus.MakeVariant(true),
			api.PropSuccess:  dbus.MakeVariant(err == nil),
		}
		message := ""
		if err != nil {
			changes[api.PropErrorName] = dbus.MakeVariant(err.Name)
			changes[api.PropMessage] = dbus.MakeVariant(err.Error())
			message = errorText(err)
		} else if result != "" && result != api.NoJob {
			changes[api.PropObjects] = dbus.MakeVariant([]dbus.ObjectPath{result})
		}
		s.tree.update(func(tx *treeTx) {
			tx.patch(path, api.JobInterface, changes)
			tx.signal(path, api.JobInterface+"."+api.SignalCompleted, err == nil, message)
		})
		// Added before done: shutdown waits for done before graceWG.
		s.graceWG.Add(1)
		go func() {
			defer s.graceWG.Done()
			t := time.NewTimer(s.cfg.JobGrace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.opsCtx.Done():
			}
			s.tree.update(func(tx *treeTx) { tx.remove(path) })
		}()
	}()
	return path
}
