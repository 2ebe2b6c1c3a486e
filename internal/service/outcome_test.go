package service

import (
	"fmt"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/region"
)

// TestOutcomeFields: every operation's outcome record carries the fields
// the README documents for the journal (OPERATION, REGION, RESULT, ERRNO).
func TestOutcomeFields(t *testing.T) {
	kernel := &region.KernelError{Op: "delete", Step: "delete_region", Attr: "delete_region", Errno: unix.EBUSY, Err: unix.EBUSY}
	tests := []struct {
		name   string
		op     operation
		result dbus.ObjectPath
		err    error
		want   map[string]any
	}{
		{"delete ok", operation{kind: "delete", what: "delete region3", region: "region3"}, "", nil,
			map[string]any{"operation": "delete", "region": "region3", "result": "ok"}},
		{"create ok names its region", operation{kind: "create", what: "create region in decoder0.0"}, "/io/github/cxlregion1/regions/region0", nil,
			map[string]any{"operation": "create", "region": "region0", "result": "ok"}},
		{"kernel refused", operation{kind: "delete", what: "delete region3", region: "region3"}, "", fmt.Errorf("wrapped: %w", kernel),
			map[string]any{"operation": "delete", "region": "region3", "result": "KernelError", "errno": "EBUSY"}},
		{"not found", operation{kind: "enable", what: "enable region9", region: "region9"}, "", region.ErrNotFound,
			map[string]any{"operation": "enable", "region": "region9", "result": "NotFound"}},
		{"refresh", operation{kind: "refresh", what: "refresh"}, "", nil,
			map[string]any{"operation": "refresh", "result": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := outcomeAttrs(tt.op, 0, tt.result, tt.err, time.Millisecond)
			got := map[string]any{}
			for i := 0; i+1 < len(attrs); i += 2 {
				switch k := attrs[i].(string); k {
				case "operation", "region", "result", "errno":
					got[k] = attrs[i+1]
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("fields (-want +got):\n%s", d)
			}
		})
	}
}
