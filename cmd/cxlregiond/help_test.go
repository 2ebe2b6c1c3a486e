package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// pflag takes a `backquoted` word in a flag's usage as the name of its
// argument: "--lock-dir cxlregionctl lock" instead of "--lock-dir string".
// No usage string may rename its argument that way.
func TestFlagUsagesKeepTheirTypeNames(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			plain := *f
			plain.Usage = strings.ReplaceAll(f.Usage, "`", "")
			got, _ := pflag.UnquoteUsage(f)
			want, _ := pflag.UnquoteUsage(&plain)
			if got != want {
				t.Errorf("%s --%s: help names its argument %q, want %q (a backquoted word in the usage)", c.CommandPath(), f.Name, got, want)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())

	var out bytes.Buffer
	cmd := newRootCommand()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--lock-dir string ") {
		t.Errorf("--help does not show --lock-dir string:\n%s", out.String())
	}
}
