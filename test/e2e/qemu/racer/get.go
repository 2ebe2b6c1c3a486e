package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// runGet prints the body of one HTTP GET: the guest's scraper of the
// daemon's metrics. Debian's busybox-static wget segfaults in the test VM
// (seen on 6.1 under TCG with -cpu max), and the pure-Go client needs no libc.
func runGet(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: racer get URL")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
