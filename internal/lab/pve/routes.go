package pve

import "net/http"

// routeTable maps schema path templates and methods to handlers. Every
// entry must exist in the PVE 9.1 schema (checked by New and by a test).
func (s *Server) routeTable() map[string]map[string]handlerFunc {
	const (
		get = http.MethodGet
		put = http.MethodPut
		pst = http.MethodPost
		del = http.MethodDelete
	)
	ct := "/nodes/{node}/lxc/{vmid}"
	return map[string]map[string]handlerFunc{
		"/":                                       {get: hRootIndex},
		"/version":                                {get: hVersion},
		"/cluster":                                {get: hClusterIndex},
		"/cluster/status":                         {get: hClusterStatus},
		"/cluster/resources":                      {get: hClusterResources},
		"/cluster/nextid":                         {get: hNextID},
		"/cluster/tasks":                          {get: hClusterTasks},
		"/cluster/firewall/options":               {get: hClusterFWGet, put: hClusterFWPut},
		"/cluster/firewall/groups":                {get: hGroupList, pst: hGroupCreate},
		"/cluster/firewall/groups/{group}":        {get: hGroupRules, pst: hGroupRuleCreate, del: hGroupDelete},
		"/cluster/firewall/groups/{group}/{pos}":  {get: hGroupRuleGet, put: hGroupRulePut, del: hGroupRuleDelete},
		"/storage":                                {get: hClusterStorage},
		"/nodes":                                  {get: hNodes},
		"/nodes/{node}":                           {get: hNodeIndex},
		"/nodes/{node}/status":                    {get: hNodeStatus},
		"/nodes/{node}/syslog":                    {get: hSyslog},
		"/nodes/{node}/tasks":                     {get: hNodeTasks},
		"/nodes/{node}/tasks/{upid}":              {get: hTaskIndex, del: hTaskStop},
		"/nodes/{node}/tasks/{upid}/status":       {get: hTaskStatus},
		"/nodes/{node}/tasks/{upid}/log":          {get: hTaskLog},
		"/nodes/{node}/vzdump":                    {pst: hVzdump},
		"/nodes/{node}/storage":                   {get: hStorageList},
		"/nodes/{node}/storage/{storage}":         {get: hStorageIndex},
		"/nodes/{node}/storage/{storage}/status":  {get: hStorageStatus},
		"/nodes/{node}/storage/{storage}/content": {get: hStorageContent},
		"/nodes/{node}/storage/{storage}/content/{volume}": {get: hVolumeGet, put: hVolumePut, del: hVolumeDelete},
		"/nodes/{node}/lxc":                      {get: hLXCList, pst: hLXCCreate},
		ct:                                       {get: hLXCIndex, del: hLXCDestroy},
		ct + "/status":                           {get: hLXCStatusIndex},
		ct + "/status/current":                   {get: hLXCStatusCurrent},
		ct + "/status/start":                     {pst: hLXCPower("start")},
		ct + "/status/stop":                      {pst: hLXCPower("stop")},
		ct + "/status/shutdown":                  {pst: hLXCPower("shutdown")},
		ct + "/status/reboot":                    {pst: hLXCPower("reboot")},
		ct + "/status/suspend":                   {pst: hLXCPower("suspend")},
		ct + "/status/resume":                    {pst: hLXCPower("resume")},
		ct + "/config":                           {get: hLXCConfigGet, put: hLXCConfigPut},
		ct + "/pending":                          {get: hLXCPending},
		ct + "/interfaces":                       {get: hLXCInterfaces},
		ct + "/snapshot":                         {get: hSnapList, pst: hSnapCreate},
		ct + "/snapshot/{snapname}":              {get: hSnapIndex, del: hSnapDelete},
		ct + "/snapshot/{snapname}/rollback":     {pst: hSnapRollback},
		ct + "/snapshot/{snapname}/config":       {get: hSnapConfigGet, put: hSnapConfigPut},
		ct + "/firewall":                         {get: hCTFirewallIndex},
		ct + "/firewall/options":                 {get: hCTFWOptionsGet, put: hCTFWOptionsPut},
		ct + "/firewall/rules":                   {get: hCTFWRules, pst: hCTFWRuleCreate},
		ct + "/firewall/rules/{pos}":             {get: hCTFWRuleGet, put: hCTFWRulePut, del: hCTFWRuleDelete},
		ct + "/firewall/log":                     {get: hCTFWLog},
		ct + "/firewall/ipset":                   {get: hCTIPSetList, pst: hCTIPSetCreate},
		ct + "/firewall/ipset/{name}":            {get: hCTIPSetGet, pst: hCTIPSetAdd, del: hCTIPSetDelete},
		ct + "/firewall/ipset/{name}/{cidr}":     {get: hCTIPSetEntryGet, put: hCTIPSetEntryPut, del: hCTIPSetEntryDelete},
		"/access":                                {get: hAccessIndex},
		"/access/ticket":                         {get: hTicketGet, pst: hTicketPost},
		"/access/users":                          {get: hUsers, pst: hUserCreate},
		"/access/users/{userid}":                 {get: hUserGet, put: hUserUpdate, del: hUserDelete},
		"/access/users/{userid}/token":           {get: hTokenList},
		"/access/users/{userid}/token/{tokenid}": {get: hTokenGet, pst: hTokenCreate, put: hTokenUpdate, del: hTokenDelete},
		"/access/acl":                            {get: hACLGet, put: hACLPut},
		"/access/permissions":                    {get: hPermissions},
	}
}

func hClusterIndex(s *Server, r *request) (result, *apiError) {
	var out []map[string]string
	for _, n := range []string{"log", "options", "resources", "status", "tasks", "nextid", "firewall", "backup", "ha", "replication"} {
		out = append(out, map[string]string{"name": n})
	}
	return result{data: out}, nil
}
