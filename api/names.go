package api

// Version and Commit name the build: the release number and the git
// commit it was built from (scripts/version.sh; the Makefile sets both with
// -ldflags "-X github.com/cxlregion/cxlregiond/api.Version=... -X ...Commit=...").
// The Debian package's version is Version.
var (
	Version = "0.1.0~dev"
	Commit  = "unknown"
)

// FullVersion is the one version string shown everywhere: both binaries'
// --version (after the program's name), the Manager's Version property and
// cxlregiond_build_info: "0.1.0~git312 (git abc1234)".
func FullVersion() string { return Version + " (git " + Commit + ")" }

// BusName is the well-known name cxlregiond owns on the system bus. The
// trailing 1 is the API's major version: an incompatible API gets a new
// name, so old and new clients can be served side by side.
const BusName = "io.github.cxlregion1"

// Object paths. As in udisks2, the ObjectManager sits at the root, the
// Manager at Root/Manager, and each kind of object in its own subtree.
const (
	RootPath         = "/io/github/cxlregion1"
	ManagerPath      = RootPath + "/Manager"
	RootDecodersPath = RootPath + "/root_decoders"
	RegionsPath      = RootPath + "/regions"
	JobsPath         = RootPath + "/jobs"
)

// Interface names.
const (
	ManagerInterface     = BusName + ".Manager"
	RootDecoderInterface = BusName + ".RootDecoder"
	RegionInterface      = BusName + ".Region"
	JobInterface         = BusName + ".Job"
)

// Standard freedesktop interfaces the daemon serves.
const (
	ObjectManagerInterface = "org.freedesktop.DBus.ObjectManager"
	PropertiesInterface    = "org.freedesktop.DBus.Properties"
	IntrospectInterface    = "org.freedesktop.DBus.Introspectable"
	PeerInterface          = "org.freedesktop.DBus.Peer"
)

// PolkitAction is the polkit action that authorizes every mutating method
// when polkit runs on the bus. Without polkit only uid 0 may mutate.
const PolkitAction = "io.github.cxlregion1.manage"

// NoJob is the object path a method returns in place of a Job when it
// waited for the operation to finish.
const NoJob = "/"
