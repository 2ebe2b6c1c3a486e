package api

import "testing"

func TestExitCodeFor(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{
		{ErrorNotFound, ExitNotFound},
		{ErrorBusy, ExitBusy},
		{ErrorFrozen, ExitBusy},
		{ErrorTimeout, ExitBusy},
		{ErrorInvalidArgument, ExitInvalidArgument},
		{"org.freedesktop.DBus.Error.InvalidArgs", ExitInvalidArgument},
		{ErrorAccessDenied, ExitAccessDenied},
		{"org.freedesktop.DBus.Error.AccessDenied", ExitAccessDenied},
		{ErrorKernelError, ExitKernelError},
		{"org.freedesktop.DBus.Error.ServiceUnknown", ExitUnreachable},
		{"org.freedesktop.DBus.Error.NameHasNoOwner", ExitUnreachable},
		{ErrorFailed, ExitFailure},
		{ErrorJournal, ExitFailure},
		{"com.example.Whatever", ExitFailure},
	}
	for _, tt := range tests {
		if got := ExitCodeFor(tt.name); got != tt.want {
			t.Errorf("ExitCodeFor(%s) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// Every exit code is documented once, and codes are distinct.
func TestExitCodesTable(t *testing.T) {
	seen := map[int]bool{}
	for _, e := range ExitCodes {
		if seen[e.Code] {
			t.Errorf("exit code %d documented twice", e.Code)
		}
		seen[e.Code] = true
		if e.Meaning == "" {
			t.Errorf("exit code %d has no meaning", e.Code)
		}
	}
	for _, c := range []int{ExitOK, ExitFailure, ExitInvalidArgument, ExitNotFound, ExitBusy, ExitAccessDenied, ExitKernelError, ExitUnreachable} {
		if !seen[c] {
			t.Errorf("exit code %d not documented", c)
		}
	}
}
