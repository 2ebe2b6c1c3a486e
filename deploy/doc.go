// Package deploy holds what installs cxlregiond on a host, as files:
//
//	systemd/cxlregiond.service       /usr/lib/systemd/system/
//	dbus/io.github.cxlregion1.conf    /usr/share/dbus-1/system.d/          bus policy
//	dbus/io.github.cxlregion1.service /usr/share/dbus-1/system-services/   bus activation
//	polkit/io.github.cxlregion1.policy /usr/share/polkit-1/actions/
//	tmpfiles/cxlregiond.conf          /usr/lib/tmpfiles.d/
//
// `make install DESTDIR=...` puts them there. The package has no code; its
// tests check the files: the bus policy fails closed (by rule evaluation,
// and against a real dbus-daemon when run as root), the unit keeps what the
// daemon needs to work (it must write /sys, read other processes' /proc,
// use fanotify) and passes `systemd-analyze verify` and a security
// exposure threshold, and the files agree with each other and with api/.
package deploy
