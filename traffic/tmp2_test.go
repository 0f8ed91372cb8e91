package traffic
import ("testing";"os";"time"
 "github.com/mlwatch/mlwatch/configs"
 "github.com/mlwatch/mlwatch/store")
func TestDump(t *testing.T){
	cfg,_:=configs.Load("../configs/example.yaml", func(string)(string,bool){return "",false})
	from:=time.Date(2026,11,2,0,0,0,0,time.UTC)
	in,_:=ParseIncident("slice_block:+10h:+14h:FR",from)
	q,a:=insertSQL(Options{Model:&cfg.Models[0],Rate:1000,Incidents:[]Incident{in}},from,1800,0,1800)
	s,_:=store.Bind(q,a...); os.WriteFile("/tmp/gen.sql",[]byte(s),0644)
}
