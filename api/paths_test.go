package api

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestRegionPath(t *testing.T) {
	tests := []struct {
		name string
		want dbus.ObjectPath
		ok   bool
	}{
		{"region0", RegionsPath + "/region0", true},
		{"region4294967", RegionsPath + "/region4294967", true},
		{"", "", false},
		{"region", "", false},
		{"region01", "", false},
		{"region-1", "", false},
		{"region0\n", "", false},
		{"../region0", "", false},
		{"region0/../../Manager", "", false},
		{"region12345678901", "", false},
		{"decoder0.0", "", false},
		{"region" + strings.Repeat("9", 4096), "", false},
	}
	for _, tt := range tests {
		got, ok := RegionPath(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RegionPath(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
		if ok && !got.IsValid() {
			t.Errorf("RegionPath(%q) = %q is not a valid object path", tt.name, got)
		}
		if ok {
			if back, ok := RegionName(got); !ok || back != tt.name {
				t.Errorf("RegionName(%q) = %q, %v", got, back, ok)
			}
		}
	}
}

func TestRootDecoderPath(t *testing.T) {
	tests := []struct {
		name string
		want dbus.ObjectPath
		ok   bool
	}{
		{"decoder0.0", RootDecodersPath + "/decoder0_0", true},
		{"decoder12.3", RootDecodersPath + "/decoder12_3", true},
		{"decoder0_0", "", false},
		{"../decoder0.0", "", false},
		{"decoder0.0/x", "", false},
		{"decoder0.", "", false},
		{"decoder00.0", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := RootDecoderPath(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RootDecoderPath(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
		if ok {
			if !got.IsValid() {
				t.Errorf("RootDecoderPath(%q) = %q is not a valid object path", tt.name, got)
			}
			if back, ok := RootDecoderName(got); !ok || back != tt.name {
				t.Errorf("RootDecoderName(%q) = %q, %v", got, back, ok)
			}
		}
	}
	for _, p := range []dbus.ObjectPath{RootDecodersPath, RootDecodersPath + "/decoder0.0", RegionsPath + "/region0", "/x/decoder0_0"} {
		if name, ok := RootDecoderName(p); ok {
			t.Errorf("RootDecoderName(%q) = %q, want not a root decoder path", p, name)
		}
	}
}

func TestJobPath(t *testing.T) {
	p := JobPath(42)
	if p != JobsPath+"/42" || !p.IsValid() || !IsJobPath(p) {
		t.Fatalf("JobPath(42) = %q", p)
	}
	for _, p := range []dbus.ObjectPath{JobsPath, JobsPath + "/0", JobsPath + "/x", RegionsPath + "/region1"} {
		if IsJobPath(p) {
			t.Errorf("IsJobPath(%q) = true", p)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"region2", "region10", true},
		{"region10", "region2", false},
		{"decoder2.0", "decoder10.0", true},
		{"decoder1.2", "decoder1.10", true},
		{"region1", "region1", false},
		{"region", "region0", true},
		{"a", "b", true},
	}
	for _, tt := range tests {
		if got := NaturalLess(tt.a, tt.b); got != tt.want {
			t.Errorf("NaturalLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
