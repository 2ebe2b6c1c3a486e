package region

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

// SizeAlign is the unit of region and endpoint decoder sizes: the kernel
// refuses sizes that are not a multiple of 256 MiB per interleave way.
const SizeAlign = 256 << 20

// MaxTargets is the most interleave targets a region may have.
const MaxTargets = 16

var (
	uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// The ways and granularities the kernel can encode (ways_to_eiw,
	// granularity_to_eig).
	validWays          = []int{1, 2, 3, 4, 6, 8, 12, 16}
	validGranularities = []int{256, 512, 1024, 2048, 4096, 8192, 16384}
)

// ValidateRegionName checks a region name: region<N>.
func ValidateRegionName(s string) error {
	if !devname.IsRegion(s) {
		return fmt.Errorf("region name %q: must be region<N>: %w", truncate(s), ErrInvalid)
	}
	return nil
}

// ValidateDecoderName checks a decoder name: decoder<X>.<Y>.
func ValidateDecoderName(s string) error {
	if !devname.IsDecoder(s) {
		return fmt.Errorf("decoder name %q: must be decoder<X>.<Y>: %w", truncate(s), ErrInvalid)
	}
	return nil
}

// ValidateTargetName checks a create target: an endpoint decoder
// (decoderM.K) or a memdev (memN), whose endpoint decoder the planner picks
// as `cxl create-region -m` does.
func ValidateTargetName(s string) error {
	if devname.IsDecoder(s) || devname.IsMemdev(s) {
		return nil
	}
	return fmt.Errorf("target %q: must be an endpoint decoder (decoder<M>.<K>) or a memdev (mem<N>): %w", truncate(s), ErrInvalid)
}

// ValidateUUID checks a uuid in its 36-character form; the null uuid is
// refused, as the kernel refuses it.
func ValidateUUID(s string) error {
	if !uuidRE.MatchString(s) {
		return fmt.Errorf("uuid %q: must be 8-4-4-4-12 hexadecimal digits: %w", truncate(s), ErrInvalid)
	}
	if s == "00000000-0000-0000-0000-000000000000" {
		return fmt.Errorf("uuid: the null uuid is not allowed: %w", ErrInvalid)
	}
	return nil
}

// ValidateType checks a region type.
func ValidateType(s string) error {
	if s != "pmem" && s != "ram" {
		return fmt.Errorf("type %q: must be pmem or ram: %w", truncate(s), ErrInvalid)
	}
	return nil
}

// ValidateWays checks an interleave ways value the kernel can encode.
func ValidateWays(n int) error {
	if !slices.Contains(validWays, n) {
		return fmt.Errorf("interleave ways %d: must be one of %v: %w", n, validWays, ErrInvalid)
	}
	return nil
}

// ValidateGranularity checks an interleave granularity the kernel can encode.
func ValidateGranularity(n int) error {
	if !slices.Contains(validGranularities, n) {
		return fmt.Errorf("interleave granularity %d: must be one of %v: %w", n, validGranularities, ErrInvalid)
	}
	return nil
}

// ValidateSize checks a region size for a number of ways.
func ValidateSize(size uint64, ways int) error {
	if ways < 1 {
		ways = 1
	}
	unit := uint64(SizeAlign) * uint64(ways)
	if size == 0 || size%unit != 0 {
		return fmt.Errorf("size %d: must be a non-zero multiple of 256 MiB × %d ways (%d): %w", size, ways, unit, ErrInvalid)
	}
	return nil
}

// truncate keeps error messages short when a caller sends a huge string.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
