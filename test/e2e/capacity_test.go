package e2e

import (
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/api"
)

// TestCLICapacityAsANewUser is the first sequence through the CLI,
// as a new user types it: two 256 MiB regions on one memdev, delete the
// lower one, then ask for 512 MiB. The create exits 4 naming the kernel's
// order rule, no kernel write fails, the stranded capacity shows in the
// metrics and status's FREE is what a create can get; delete --all gives
// everything back; create as `cxl create-region` users know it (memdev
// targets, default decoder and size) works.
func TestCLICapacityAsANewUser(t *testing.T) {
	d := startDaemon(t)
	stranded := `cxlregiond_memdev_capacity_bytes{kind="stranded",memdev="mem0"}`
	free := `cxlregiond_memdev_capacity_bytes{kind="free",memdev="mem0"}`

	r0 := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M", "--no-bind"))
	r1 := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M", "--no-bind"))
	d.mustCtl("delete", r0)
	if got := d.metric(stranded); got != 256<<20 {
		t.Errorf("%s = %v after deleting %s below %s, want 256 MiB", stranded, got, r0, r1)
	}
	if st := d.mustCtl("status"); !strings.Contains(st, "mem0: decoder") || !strings.Contains(st, "still holds 256 MiB of a deleted region; freed when "+r1) {
		t.Errorf("status does not show the stranded capacity:\n%s", st)
	}
	if info := d.mustCtl("info", "mem0"); !strings.Contains(info, "STRANDED") || !strings.Contains(info, r1) {
		t.Errorf("info mem0:\n%s", info)
	}
	before := len(d.simLines())
	res := d.ctl("create", "--decoder", "decoder0.0", "--size", "512M", "--no-bind")
	for _, l := range d.simLines()[before:] {
		if strings.Contains(l, "cxlsim: write ") && !strings.HasSuffix(l, "-> ok") {
			t.Errorf("a kernel write failed during the create: %s", l)
		}
	}
	if res.code != api.ExitBusy || !strings.Contains(res.stderr, "order") {
		t.Errorf("create 512M after deleting the lower region: exit %d, stderr %q; want %d naming the order rule", res.code, res.stderr, api.ExitBusy)
	}
	if rd := rootDecoderStatus(t, d, "decoder0.0"); rd.MaxAvailableExtent >= 512<<20 {
		t.Errorf("status says %d bytes free in decoder0.0, but 512 MiB was refused", rd.MaxAvailableExtent)
	}

	d.mustCtl("delete", "--all")
	if got := d.metric(stranded); got != 0 {
		t.Errorf("%s = %v after delete --all, want 0", stranded, got)
	}
	if got, total := d.metric(free), d.metric(`cxlregiond_memdev_capacity_bytes{kind="total",memdev="mem0"}`); got != total || total == 0 {
		t.Errorf("mem0: %v of %v bytes free after delete --all", got, total)
	}

	// No decoder, no size: the first root decoder that takes pmem on mem0
	// and the largest size mem0 can give.
	r := checkRegion(t, []byte(d.mustCtl("create", "--target", "mem0", "--no-bind", "--json")))
	if r.RootDecoder != "decoder0.0" || len(r.Mappings) != 1 || r.Mappings[0].Memdev != "mem0" || r.Size != 2<<30 {
		t.Errorf("create --target mem0: %+v, want decoder0.0, mem0, 2 GiB (all of mem0's pmem)", r)
	}
	if r.State != "disabled" {
		t.Errorf("a region created --no-bind has cxl state %q, want disabled", r.State)
	}
	d.mustCtl("delete", "--all", "--decoder", "decoder0.0")
	if out := strings.TrimSpace(d.mustCtl("list", "--json")); out != "[]" {
		t.Errorf("list after delete --all: %s", out)
	}
	if warn, bug := d.warnings(); warn != 0 || bug != 0 {
		t.Errorf("simulated kernel: %d WARNING, %d BUG", warn, bug)
	}
}

func rootDecoderStatus(t *testing.T, d *daemon, name string) api.RootDecoder {
	t.Helper()
	var st api.Status
	strictDecode(t, []byte(d.mustCtl("status", "--json")), &st)
	for _, rd := range st.RootDecoders {
		if rd.Decoder == name {
			return rd
		}
	}
	t.Fatalf("status lacks %s", name)
	return api.RootDecoder{}
}
