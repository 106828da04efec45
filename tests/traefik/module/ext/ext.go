// Package ext stands in for Traefik's dynamic-configuration extension module
// (github.com/traefik/traefik/dynamic/ext), which Traefik's go.mod replaces with a directory
// of its repository that the published module zip leaves out (a nested module) and the
// module proxy does not serve. Upstream it holds empty extension points only; so does this.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
