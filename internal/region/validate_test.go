package region

import (
	"errors"
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"region0", ValidateRegionName("region0"), true},
		{"region12", ValidateRegionName("region12"), true},
		{"../decoder0.0", ValidateRegionName("../decoder0.0"), false},
		{"region0 newline", ValidateRegionName("region0\n"), false},
		{"empty region", ValidateRegionName(""), false},
		{"4KiB region", ValidateRegionName("region" + strings.Repeat("1", 4096)), false},
		{"decoder0.0", ValidateDecoderName("decoder0.0"), true},
		{"decoder0", ValidateDecoderName("decoder0"), false},
		{"decoder0.0/x", ValidateDecoderName("decoder0.0/../x"), false},
		{"uuid ok", ValidateUUID("a6d0c8ec-a2fb-4202-a662-84d58654eeef"), true},
		{"uuid short", ValidateUUID("a6d0c8ec-a2fb-4202-a662-84d58654eee"), false},
		{"uuid null", ValidateUUID("00000000-0000-0000-0000-000000000000"), false},
		{"uuid newline", ValidateUUID("a6d0c8ec-a2fb-4202-a662-84d58654eeef\n"), false},
		{"type pmem", ValidateType("pmem"), true},
		{"type ram", ValidateType("ram"), true},
		{"type dram", ValidateType("dram"), false},
		{"ways 0", ValidateWays(0), false},
		{"ways 3", ValidateWays(3), true},
		{"ways 5", ValidateWays(5), false},
		{"ways 17", ValidateWays(17), false},
		{"gran 256", ValidateGranularity(256), true},
		{"gran 100", ValidateGranularity(100), false},
		{"gran 32768", ValidateGranularity(32768), false},
		{"size 256M", ValidateSize(256<<20, 1), true},
		{"size 0", ValidateSize(0, 1), false},
		{"size unaligned", ValidateSize(256<<20+4096, 1), false},
		{"size 256M 2 ways", ValidateSize(256<<20, 2), false},
		{"size 512M 2 ways", ValidateSize(512<<20, 2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ok && tt.err != nil {
				t.Fatalf("want ok, got %v", tt.err)
			}
			if !tt.ok {
				if !errors.Is(tt.err, ErrInvalid) {
					t.Fatalf("want ErrInvalid, got %v", tt.err)
				}
				if len(tt.err.Error()) > 300 {
					t.Fatalf("error message not truncated: %d bytes", len(tt.err.Error()))
				}
			}
		})
	}
}
