package guard

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// metadata encodes one fanotify_event_metadata as the kernel writes it.
func metadata(eventLen uint32, vers uint8, mask uint64, fd int32, pid int32) []byte {
	b := make([]byte, metadataLen)
	binary.NativeEndian.PutUint32(b[0:], eventLen)
	b[4] = vers
	binary.NativeEndian.PutUint16(b[6:], metadataLen)
	binary.NativeEndian.PutUint64(b[8:], mask)
	binary.NativeEndian.PutUint32(b[16:], uint32(fd))
	binary.NativeEndian.PutUint32(b[20:], uint32(pid))
	return b
}

func TestParseEvents(t *testing.T) {
	const v = unix.FANOTIFY_METADATA_VERSION
	open := metadata(metadataLen, v, unix.FAN_OPEN_PERM, 7, 1234)
	closeEv := metadata(metadataLen, v, unix.FAN_CLOSE_WRITE, 8, 1234)
	withInfo := append(metadata(metadataLen+8, v, unix.FAN_CLOSE_NOWRITE, 9, 5), make([]byte, 8)...)
	overflow := metadata(metadataLen, v, unix.FAN_Q_OVERFLOW, unix.FAN_NOFD, 0)

	tests := []struct {
		name    string
		buf     []byte
		want    []event
		wantErr bool
	}{
		{"two events", append(append([]byte{}, open...), closeEv...),
			[]event{{unix.FAN_OPEN_PERM, 7, 1234}, {unix.FAN_CLOSE_WRITE, 8, 1234}}, false},
		{"record longer than the metadata", append(append([]byte{}, withInfo...), open...),
			[]event{{unix.FAN_CLOSE_NOWRITE, 9, 5}, {unix.FAN_OPEN_PERM, 7, 1234}}, false},
		{"overflow has no descriptor", overflow, []event{{unix.FAN_Q_OVERFLOW, unix.FAN_NOFD, 0}}, false},
		{"unknown version after a good event", append(append([]byte{}, open...), metadata(metadataLen, v+1, 0, 3, 1)...),
			[]event{{unix.FAN_OPEN_PERM, 7, 1234}}, true},
		{"length past the buffer", metadata(100, v, unix.FAN_OPEN_PERM, 7, 1), nil, true},
		{"length below the metadata", metadata(8, v, unix.FAN_OPEN_PERM, 7, 1), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvents(nil, tt.buf)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("event %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		errno       error
		unsupported bool
	}{
		{unix.EPERM, true},
		{unix.ENOSYS, true},
		{unix.EINVAL, true},
		{unix.EMFILE, false},
		{unix.ENOMEM, false},
	}
	for _, tt := range tests {
		err := unsupported("fanotify_init", tt.errno)
		if errors.Is(err, ErrUnsupported) != tt.unsupported {
			t.Errorf("%v: errors.Is(ErrUnsupported) = %v, want %v (%v)", tt.errno, !tt.unsupported, tt.unsupported, err)
		}
		if !errors.Is(err, tt.errno) {
			t.Errorf("%v: the errno is lost: %v", tt.errno, err)
		}
	}
}
