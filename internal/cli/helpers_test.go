package cli

import "github.com/ferry-dev/ferry/server"

func serverForeignURLs(allow, deny string) server.Option {
	var a, d []string
	if allow != "" {
		a = []string{allow}
	}
	if deny != "" {
		d = []string{deny}
	}
	return server.WithForeignURLs(a, d)
}
