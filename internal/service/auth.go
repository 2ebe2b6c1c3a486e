package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

const (
	polkitName      = "org.freedesktop.PolicyKit1"
	polkitPath      = "/org/freedesktop/PolicyKit1/Authority"
	polkitCheckAuth = "org.freedesktop.PolicyKit1.Authority.CheckAuthorization"

	// polkitAllowUserInteraction lets polkit ask an authentication agent.
	polkitAllowUserInteraction = 1
)

// authTimeout bounds the bus calls of one authorization. With user
// interaction polkit waits for a person to type a password.
const (
	authTimeout            = 10 * time.Second
	authInteractiveTimeout = 5 * time.Minute
)

// polkitSubject is polkit's (sa{sv}) subject.
type polkitSubject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// polkitResult is polkit's (bba{ss}) authorization result.
type polkitResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// authorize decides whether the sender may change the host, before
// anything else happens: uid 0 may, and so may the daemon's own uid (such a
// caller could do anything the daemon does anyway; it matters for a daemon
// on the simulator started by an ordinary user); anyone else only if polkit
// runs on the bus and grants io.github.cxlregion1.manage. Any failure to
// find out is a refusal. It returns the caller's uid, which a Job reports.
func (s *Service) authorize(ctx context.Context, sender string, interactive bool, what string) (uint32, *dbus.Error) {
	conn := s.conn.Load()
	if conn == nil || sender == "" {
		return 0, accessDenied("%s: cannot identify the caller", what)
	}
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()
	var uid uint32
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0, sender).Store(&uid); err != nil {
		s.log.Warn("cannot get the caller's uid; refusing", "sender", sender, "err", err)
		return 0, accessDenied("%s: cannot get the uid of %s: %v", what, sender, err)
	}
	if uid == 0 || uid == s.selfUID {
		return uid, nil
	}
	present, err := polkitPresent(ctx, conn)
	if err != nil {
		s.log.Warn("cannot tell whether polkit runs; refusing", "sender", sender, "uid", uid, "err", err)
		return uid, accessDenied("%s: uid %d is not root, and polkit could not be asked: %v", what, uid, err)
	}
	if !present {
		return uid, accessDenied("%s: uid %d is not root (polkit is not running, so only root may change regions)", what, uid)
	}
	ok, err := s.checkPolkit(ctx, conn, sender, interactive)
	if err != nil {
		s.log.Warn("polkit check failed; refusing", "sender", sender, "uid", uid, "err", err)
		return uid, accessDenied("%s: uid %d: polkit check of %s failed: %v", what, uid, api.PolkitAction, err)
	}
	if !ok {
		return uid, accessDenied("%s: uid %d is not authorized for %s", what, uid, api.PolkitAction)
	}
	return uid, nil
}

// polkitPresent reports whether polkit runs on the bus or can be started
// by it.
func polkitPresent(ctx context.Context, conn *dbus.Conn) (bool, error) {
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, polkitName).Store(&has); err != nil {
		return false, err
	}
	if has {
		return true, nil
	}
	var activatable []string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&activatable); err != nil {
		return false, err
	}
	for _, n := range activatable {
		if n == polkitName {
			return true, nil
		}
	}
	return false, nil
}

// checkPolkit asks polkit about the caller's bus name: polkit resolves the
// name to its process itself, so a caller cannot pass a pid it does not own.
func (s *Service) checkPolkit(ctx context.Context, conn *dbus.Conn, sender string, interactive bool) (bool, error) {
	var flags uint32
	if interactive {
		flags = polkitAllowUserInteraction
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), authInteractiveTimeout)
		defer cancel()
	}
	subject := polkitSubject{Kind: "system-bus-name", Details: map[string]dbus.Variant{"name": dbus.MakeVariant(sender)}}
	var res polkitResult
	call := conn.Object(polkitName, polkitPath).CallWithContext(ctx, polkitCheckAuth, 0,
		subject, api.PolkitAction, map[string]string{}, flags, "")
	if call.Err != nil {
		return false, call.Err
	}
	if err := call.Store(&res); err != nil {
		return false, fmt.Errorf("polkit reply: %w", err)
	}
	if res.IsChallenge && !res.IsAuthorized {
		return false, errors.New("authentication required and no agent answered (or auth.no_user_interaction was set)")
	}
	return res.IsAuthorized, nil
}
