package cxlsim

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// createRegionStore is create_{pmem,ram}_region_store: the second half of
// the create handshake.
func (k *Kernel) createRegionStore(rd *rootDecoderState, mode string, data []byte) error {
	id, ok := sscanfRegion(data)
	if !ok {
		return unix.EINVAL
	}
	_, err := k.createRegion(rd, mode, id)
	return err
}

// createRegion is __create_region: the written id must be the root
// decoder's cached one (cmpxchg); the cache moves to a fresh id from the
// global IDA and the region takes the old one.
func (k *Kernel) createRegion(rd *rootDecoderState, mode string, id int) (*regionState, error) {
	if rd.CachedID < 0 || rd.CachedID != id {
		return nil, unix.EBUSY
	}
	rd.CachedID = k.idaAlloc()
	k.st.RegionOrder++
	r := &regionState{
		ID:          id,
		Name:        fmt.Sprintf("region%d", id),
		RootDecoder: rd.Name,
		Mode:        mode,
		State:       stateIdle,
		Order:       k.st.RegionOrder,
		refs:        1,
	}
	k.st.Regions = append(k.st.Regions, r)
	k.regions[r.Name] = r
	k.add(k.regionDev(r)) // device_add; the probe that follows fails (state < COMMIT) silently
	r.action = true       // devm_add_action_or_reset(ACPI0017, unregister_region)
	k.klog.kernel(fmt.Sprintf("cxl_acpi %s: %s: created %s", acpiName, rd.Name, r.Name))
	return r, nil
}

// putRegion drops a reference; the last one releases the region
// (cxl_region_release): its id goes back to the IDA, or becomes the root
// decoder's cached id again when it is lower.
func (k *Kernel) putRegion(r *regionState) {
	r.refs--
	if r.refs > 0 {
		return
	}
	rd := k.rds[r.RootDecoder]
	if rd != nil && rd.CachedID >= 0 && r.ID < rd.CachedID {
		old := rd.CachedID
		rd.CachedID = r.ID
		k.idaFree(old)
		return
	}
	k.idaFree(r.ID)
}
