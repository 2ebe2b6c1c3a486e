package service

import (
	"maps"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// props is one interface's properties; object is an object's interfaces.
type (
	props  = map[string]dbus.Variant
	object = map[string]props
)

// signal is one D-Bus signal to emit.
type signal struct {
	path dbus.ObjectPath
	name string // interface.member
	args []any
}

// objectTree owns the exported objects and is the ObjectManager at the
// root: every change to an object goes through update, which turns it into
// InterfacesAdded, InterfacesRemoved and PropertiesChanged signals carrying
// only what changed (godbus has no ObjectManager that keeps itself in
// sync, and its prop package emits a signal per Set).
type objectTree struct {
	root dbus.ObjectPath
	emit func(signal)
	// check is shown every interface's properties as they change.
	check func(path dbus.ObjectPath, iface string, p props)

	// updateMu serializes updates so their signals leave in the order the
	// changes were made. It is held while emitting; mu, which readers take,
	// is not: a slow bus never blocks GetManagedObjects or Properties.Get.
	updateMu sync.Mutex
	mu       sync.RWMutex
	objects  map[dbus.ObjectPath]object
}

func newObjectTree(root dbus.ObjectPath, emit func(signal), check func(dbus.ObjectPath, string, props)) *objectTree {
	if check == nil {
		check = func(dbus.ObjectPath, string, props) {}
	}
	return &objectTree{root: root, emit: emit, check: check, objects: map[dbus.ObjectPath]object{}}
}

// treeTx is one batch of changes to the tree.
type treeTx struct {
	t   *objectTree
	out []signal
}

// update applies a batch of changes, then emits their signals.
func (t *objectTree) update(fn func(tx *treeTx)) {
	t.updateMu.Lock()
	defer t.updateMu.Unlock()
	t.applyAndEmit(fn)
}

// applyAndEmit is update for a caller that holds updateMu, having read
// what it applies under it: two updaters that read a source then apply
// what they read must not apply in the other order.
func (t *objectTree) applyAndEmit(fn func(tx *treeTx)) {
	tx := &treeTx{t: t}
	t.mu.Lock()
	fn(tx)
	t.mu.Unlock()
	for _, s := range tx.out {
		t.emit(s)
	}
}

// set makes path have exactly the interfaces and properties of obj.
func (tx *treeTx) set(path dbus.ObjectPath, obj object) {
	cur, exists := tx.t.objects[path]
	next := cloneObject(obj)
	for iface, p := range next {
		tx.t.check(path, iface, p)
	}
	tx.t.objects[path] = next
	if !exists {
		tx.added(path, next)
		return
	}
	var gone []string
	for iface := range cur {
		if _, ok := next[iface]; !ok {
			gone = append(gone, iface)
		}
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		tx.out = append(tx.out, signal{tx.t.root, api.ObjectManagerInterface + ".InterfacesRemoved", []any{path, gone}})
	}
	fresh := object{}
	for _, iface := range sortedKeys(next) {
		old, ok := cur[iface]
		if !ok {
			fresh[iface] = next[iface]
			continue
		}
		tx.changed(path, iface, old, next[iface])
	}
	if len(fresh) > 0 {
		tx.added(path, fresh)
	}
}

// patch changes some properties of one interface of an existing object.
func (tx *treeTx) patch(path dbus.ObjectPath, iface string, changes props) {
	obj, ok := tx.t.objects[path]
	if !ok {
		return
	}
	old, ok := obj[iface]
	if !ok {
		return
	}
	next := maps.Clone(old)
	maps.Copy(next, changes)
	tx.t.check(path, iface, next)
	obj[iface] = next
	tx.changed(path, iface, old, next)
}

// remove drops an object.
func (tx *treeTx) remove(path dbus.ObjectPath) {
	cur, ok := tx.t.objects[path]
	if !ok {
		return
	}
	delete(tx.t.objects, path)
	tx.out = append(tx.out, signal{tx.t.root, api.ObjectManagerInterface + ".InterfacesRemoved", []any{path, sortedKeys(cur)}})
}

// signal queues a signal of the object's own (Job.Completed) in order with
// the property changes of the same batch.
func (tx *treeTx) signal(path dbus.ObjectPath, name string, args ...any) {
	tx.out = append(tx.out, signal{path, name, args})
}

// paths lists the objects whose path starts with prefix.
func (tx *treeTx) paths(prefix string) []dbus.ObjectPath {
	var out []dbus.ObjectPath
	for p := range tx.t.objects {
		if strings.HasPrefix(string(p), prefix) {
			out = append(out, p)
		}
	}
	return out
}

// property reads one property inside a batch.
func (tx *treeTx) property(path dbus.ObjectPath, iface, name string) (dbus.Variant, bool) {
	v, ok := tx.t.objects[path][iface][name]
	return v, ok
}

func (tx *treeTx) added(path dbus.ObjectPath, obj object) {
	payload := make(map[string]map[string]dbus.Variant, len(obj))
	for iface, p := range obj {
		payload[iface] = maps.Clone(p)
	}
	tx.out = append(tx.out, signal{tx.t.root, api.ObjectManagerInterface + ".InterfacesAdded", []any{path, payload}})
}

func (tx *treeTx) changed(path dbus.ObjectPath, iface string, old, next props) {
	diff := props{}
	for name, v := range next {
		if ov, ok := old[name]; !ok || !sameVariant(ov, v) {
			diff[name] = v
		}
	}
	var invalidated []string
	for name := range old {
		if _, ok := next[name]; !ok {
			invalidated = append(invalidated, name)
		}
	}
	if len(diff) == 0 && len(invalidated) == 0 {
		return
	}
	if invalidated == nil {
		invalidated = []string{}
	}
	sort.Strings(invalidated)
	tx.out = append(tx.out, signal{path, api.PropertiesInterface + ".PropertiesChanged", []any{iface, diff, invalidated}})
}

// get returns a copy of one interface's properties.
func (t *objectTree) get(path dbus.ObjectPath, iface string) (props, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p, ok := t.objects[path][iface]
	return maps.Clone(p), ok
}

// interfaces lists an object's interfaces, or false if there is no such
// object.
func (t *objectTree) interfaces(path dbus.ObjectPath) ([]string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	obj, ok := t.objects[path]
	if !ok {
		return nil, false
	}
	return sortedKeys(obj), true
}

// managed is the reply of GetManagedObjects.
func (t *objectTree) managed() map[dbus.ObjectPath]map[string]map[string]dbus.Variant {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[dbus.ObjectPath]map[string]map[string]dbus.Variant, len(t.objects))
	for p, obj := range t.objects {
		out[p] = cloneObject(obj)
	}
	return out
}

// children lists the names of the nodes directly below path that lead to
// an object, for introspection.
func (t *objectTree) children(path dbus.ObjectPath) []string {
	prefix := string(path) + "/"
	if path == "/" {
		prefix = "/"
	}
	set := map[string]bool{}
	t.mu.RLock()
	for p := range t.objects {
		if rest, ok := strings.CutPrefix(string(p), prefix); ok && rest != "" {
			set[strings.SplitN(rest, "/", 2)[0]] = true
		}
	}
	t.mu.RUnlock()
	return sortedKeys(set)
}

func cloneObject(obj object) object {
	out := make(object, len(obj))
	for iface, p := range obj {
		out[iface] = maps.Clone(p)
	}
	return out
}

func sameVariant(a, b dbus.Variant) bool {
	return a.Signature() == b.Signature() && reflect.DeepEqual(a.Value(), b.Value())
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
