package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// callMargin is how much longer than the operation's own timeout the client
// waits for the reply: the daemon answers Timeout itself first.
const callMargin = 30 * time.Second

// defaultCallTimeout bounds a call without --timeout: longer than the
// daemon's default operation timeout.
const defaultCallTimeout = 5 * time.Minute

// client is a connection to the daemon.
type client struct {
	conn *godbus.Conn
}

// connect opens a private connection to the system bus.
func connect() (*client, error) {
	conn, err := godbus.ConnectSystemBus()
	if err != nil {
		return nil, &exitError{code: api.ExitUnreachable, err: fmt.Errorf("cannot connect to the system bus: %w", err)}
	}
	return &client{conn: conn}, nil
}

func (c *client) Close() { _ = c.conn.Close() }

// call calls a method of the daemon and maps a failure to its exit code.
// what names the object and operation for the error message.
func (c *client) call(ctx context.Context, timeout time.Duration, what string, path godbus.ObjectPath, method string, args ...any) *godbus.Call {
	if timeout <= 0 {
		timeout = defaultCallTimeout
	} else {
		timeout += callMargin
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	call := c.conn.Object(api.BusName, path).CallWithContext(ctx, method, 0, args...)
	if call.Err != nil {
		call.Err = callError(what, call.Err)
	}
	return call
}

// callError turns a D-Bus failure into an exitError whose message names the
// object and the reason: the daemon's own errors already do, and are
// printed as they are; what (the operation and its object) prefixes the
// rest.
func callError(what string, err error) error {
	name, msg := errorName(err)
	code := api.ExitCodeFor(name)
	switch {
	case strings.HasPrefix(name, api.BusName+".Error.") && msg != "":
		return &exitError{code: code, err: errors.New(msg)}
	case name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner":
		msg = "cxlregiond is not running (" + api.BusName + " has no owner on the system bus)"
	case errors.Is(err, context.DeadlineExceeded):
		code = api.ExitUnreachable
		msg = "cxlregiond did not answer in time"
	case name == "":
		msg = err.Error()
	}
	return &exitError{code: code, err: fmt.Errorf("%s: %s", what, msg)}
}

// errorName returns a D-Bus error's name and message, or "" for an error
// that is not one (a broken connection).
func errorName(err error) (string, string) {
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name, de.Error()
	}
	var dep *godbus.Error
	if errors.As(err, &dep) {
		return dep.Name, dep.Error()
	}
	return "", err.Error()
}

func (c *client) managedObjects(ctx context.Context) (api.ManagedObjects, error) {
	var objs api.ManagedObjects
	err := c.call(ctx, 0, "list objects", api.RootPath, api.ObjectManagerInterface+".GetManagedObjects").Store(&objs)
	if err != nil {
		return nil, err
	}
	return objs, nil
}

// properties reads all properties of one interface of one object.
func (c *client) properties(ctx context.Context, what string, path godbus.ObjectPath, iface string) (api.Properties, error) {
	var p api.Properties
	if err := c.call(ctx, 0, what, path, api.PropertiesInterface+".GetAll", iface).Store(&p); err != nil {
		return nil, err
	}
	return p, nil
}

// regionPath is the object path of a region named on the command line. A
// name the kernel could not have given (region01) is a usage error, found
// before anything talks to the bus.
func regionPath(name string) (godbus.ObjectPath, error) {
	path, ok := api.RegionPath(name)
	if !ok {
		return "", usageErr("%q is not a region name (want region<N>, e.g. region0)", name)
	}
	return path, nil
}

// region reads one region.
func (c *client) region(ctx context.Context, name string) (api.Region, error) {
	path, err := regionPath(name)
	if err != nil {
		return api.Region{}, err
	}
	p, err := c.properties(ctx, name, path, api.RegionInterface)
	if err != nil {
		return api.Region{}, err
	}
	r, err := api.DecodeRegion(p)
	if err != nil {
		return api.Region{}, &exitError{code: api.ExitFailure, err: fmt.Errorf("%s: unexpected reply: %w", name, err)}
	}
	return r, nil
}
