// Command argocd-health runs an Argo CD health script on Kubernetes objects the way Argo CD
// does (argo-cd util/lua/lua.go: gopher-lua with only the package, base and table
// libraries, the object as the global `obj`, a one-second limit, and the returned table
// read as {status, message}), and prints one JSON line per object:
//
//	{"name":"ns/name","status":"Healthy","message":"..."}
//
// Usage: argocd-health SCRIPT.lua FILE.json... (each file one object or a List of them).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type health struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// The codes Argo CD accepts; anything else it shows as Unknown.
var codes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua FILE.json...")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	check(err)
	out := json.NewEncoder(os.Stdout)
	for _, file := range os.Args[2:] {
		for _, obj := range objects(file) {
			check(out.Encode(evaluate(string(script), obj)))
		}
	}
}

// objects reads one object, or the items of a List.
func objects(file string) []map[string]any {
	text, err := os.ReadFile(file)
	check(err)
	var doc map[string]any
	check(json.Unmarshal(text, &doc))
	items, isList := doc["items"].([]any)
	if !isList {
		return []map[string]any{doc}
	}
	var objs []map[string]any
	for _, item := range items {
		objs = append(objs, item.(map[string]any))
	}
	return objs
}

func evaluate(script string, obj map[string]any) health {
	meta, _ := obj["metadata"].(map[string]any)
	name := fmt.Sprintf("%v/%v", meta["namespace"], meta["name"])
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return health{Name: name, Status: "Unknown", Message: "script failed: " + err.Error()}
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return health{Name: name, Status: "Unknown", Message: "script returned no table"}
	}
	h := health{
		Name:    name,
		Status:  lua.LVAsString(table.RawGetString("status")),
		Message: lua.LVAsString(table.RawGetString("message")),
	}
	if !codes[h.Status] {
		return health{Name: name, Status: "Unknown", Message: "invalid health status " + h.Status}
	}
	return h
}

// decode turns decoded JSON into Lua values as Argo CD's decodeValue does.
func decode(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decode(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decode(l, item))
		}
		return tbl
	}
	return lua.LNil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
