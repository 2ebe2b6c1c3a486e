package service

import (
	"context"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

func (s *Service) managerCreateRegion(req *request) ([]any, *dbus.Error) {
	root := req.args[0].(string)
	o, err := parseOptions(api.MethodCreateRegion, req.args[1].(map[string]dbus.Variant), api.CreateOptions)
	if err != nil {
		return nil, err
	}
	return s.createRegion(req, root, o)
}

func (s *Service) rootDecoderCreateRegion(req *request) ([]any, *dbus.Error) {
	root, _ := api.RootDecoderName(req.path)
	o, err := parseOptions(api.MethodCreateRegion, req.args[0].(map[string]dbus.Variant), api.CreateOptions)
	if err != nil {
		return nil, err
	}
	return s.createRegion(req, root, o)
}

func (s *Service) createRegion(req *request, root string, o options) ([]any, *dbus.Error) {
	creq, err := createRequest(root, o)
	if err != nil {
		return nil, err
	}
	rootPath, _ := api.RootDecoderPath(root)
	return s.execute(req, operation{
		kind: "create", what: "create region in " + root, objects: []dbus.ObjectPath{rootPath}, opts: o,
		cancelable: true,
		run: func(ctx context.Context) (dbus.ObjectPath, error) {
			info, err := s.engine.Create(ctx, creq)
			if err != nil {
				return "", err
			}
			s.sync()
			p, _ := api.RegionPath(info.Name)
			return p, nil
		},
	})
}

func (s *Service) managerDeleteRegion(req *request) ([]any, *dbus.Error) {
	name := req.args[0].(string)
	if err := validRegionName(name); err != nil {
		return nil, err
	}
	o, err := parseOptions(api.MethodDeleteRegion, req.args[1].(map[string]dbus.Variant), api.DeleteOptions)
	if err != nil {
		return nil, err
	}
	return s.deleteRegion(req, name, o, false)
}

func (s *Service) regionDelete(req *request) ([]any, *dbus.Error) {
	name, _ := api.RegionName(req.path)
	o, err := parseOptions(api.MethodDelete, req.args[0].(map[string]dbus.Variant), api.DeleteOptions)
	if err != nil {
		return nil, err
	}
	return s.deleteRegion(req, name, o, true)
}

// deleteRegion deletes a region. Called on a Region object without the
// generation option, it pins the generation that object shows, so a
// request can never hit a newer region that took the name meanwhile.
func (s *Service) deleteRegion(req *request, name string, o options, pinObject bool) ([]any, *dbus.Error) {
	dreq := region.DeleteRequest{Name: name, Generation: o.generation, Memory: region.MemoryOptions{Offline: o.offline}}
	p, _ := api.RegionPath(name)
	return s.execute(req, operation{
		kind: "delete", what: "delete " + name, region: name, objects: []dbus.ObjectPath{p}, opts: o,
		cancelable: true,
		check: func() *dbus.Error {
			if pinObject && dreq.Generation == 0 {
				gen, err := s.regionGeneration("delete "+name, name)
				if err != nil {
					return err
				}
				dreq.Generation = gen
			}
			return nil
		},
		run: func(ctx context.Context) (dbus.ObjectPath, error) {
			dreq.Memory.Progress = progressOf(ctx)
			err := s.engine.Delete(ctx, dreq)
			s.sync()
			return api.NoJob, err
		},
	})
}

func (s *Service) regionEnable(req *request) ([]any, *dbus.Error) {
	return s.bindRegion(req, api.MethodEnable, "enable", api.BindOptions, func(ctx context.Context, name string, _ options) error {
		return s.engine.Enable(ctx, name)
	})
}

func (s *Service) regionDisable(req *request) ([]any, *dbus.Error) {
	return s.bindRegion(req, api.MethodDisable, "disable", api.DisableOptions, func(ctx context.Context, name string, o options) error {
		return s.engine.DisableWith(ctx, name, region.MemoryOptions{Offline: o.offline, Progress: progressOf(ctx)})
	})
}

func (s *Service) bindRegion(req *request, methodName, kind string, allowed []string, do func(context.Context, string, options) error) ([]any, *dbus.Error) {
	name, _ := api.RegionName(req.path)
	o, err := parseOptions(methodName, req.args[0].(map[string]dbus.Variant), allowed)
	if err != nil {
		return nil, err
	}
	return s.execute(req, operation{
		kind: kind, what: kind + " " + name, region: name, objects: []dbus.ObjectPath{req.path}, opts: o,
		check: func() *dbus.Error {
			_, err := s.regionGeneration(kind+" "+name, name)
			return err
		},
		run: func(ctx context.Context) (dbus.ObjectPath, error) {
			err := do(ctx, name, o)
			s.sync()
			return api.NoJob, err
		},
	})
}

func (s *Service) managerRefresh(req *request) ([]any, *dbus.Error) {
	return s.execute(req, operation{
		kind: "refresh", what: "refresh", opts: options{timeout: refreshTimeout}, noResult: true,
		run: func(ctx context.Context) (dbus.ObjectPath, error) {
			err := s.engine.Rescan(ctx)
			s.sync()
			return "", err
		},
	})
}
