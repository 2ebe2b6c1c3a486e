package main

import (
	"fmt"
	"os"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
)

// newSimulator builds the simulated kernel of --simulate.
func newSimulator(o *daemonOptions) (*cxlsim.Kernel, error) {
	opts := []cxlsim.Option{
		cxlsim.WithProfile(o.simProfile),
		cxlsim.WithDeleteDelay(o.simDeleteDelay),
		cxlsim.WithRegisterDelay(o.simRegisterDelay),
		cxlsim.WithAssembleDuration(o.simAssembleTime),
		cxlsim.WithHypervisor(o.simHypervisor),
		cxlsim.WithSystemRAM(o.simSystemRAM),
	}
	topo, err := simTopology(o.simulate)
	if err != nil {
		return nil, err
	}
	opts = append(opts, cxlsim.WithTopology(topo))
	if o.simLog != "" {
		f, err := os.OpenFile(o.simLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--sim-log: %w", err)
		}
		// The file stays open for the life of the process: the simulated
		// kernel logs until the very end.
		opts = append(opts, cxlsim.WithLogWriter(f))
	}
	if o.simState != "" {
		opts = append(opts, cxlsim.WithStateFile(o.simState))
	}
	k, err := cxlsim.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	return k, nil
}

// simTopology resolves --simulate's value.
func simTopology(which string) (cxlsim.Topology, error) {
	switch which {
	case "", "default":
		return cxlsim.DefaultTopology(), nil
	case "qemu":
		return cxlsim.QEMUTopology(), nil
	}
	f, err := os.Open(which)
	if err != nil {
		return cxlsim.Topology{}, fmt.Errorf("--simulate topology: %w", err)
	}
	defer f.Close()
	return cxlsim.LoadTopology(f)
}
