package cxlsim

import "slices"

// The memregion IDA (lib/memregion.c): one global allocator of region ids
// that always hands out the lowest free id. Root decoders cache one id
// each (create_*_region shows it); regions own theirs until released.

func (k *Kernel) idaAlloc() int {
	id := 0
	for _, used := range k.st.IDs { // sorted
		if used != id {
			break
		}
		id++
	}
	k.st.IDs = append(k.st.IDs, id)
	slices.Sort(k.st.IDs)
	return id
}

func (k *Kernel) idaFree(id int) {
	if i, ok := slices.BinarySearch(k.st.IDs, id); ok {
		k.st.IDs = slices.Delete(k.st.IDs, i, i+1)
	}
}

func (k *Kernel) idaUsed(id int) bool {
	_, ok := slices.BinarySearch(k.st.IDs, id)
	return ok
}
