package traffic
import ("testing";"fmt";"context";"time"
 "github.com/mlwatch/mlwatch/configs"
 "github.com/mlwatch/mlwatch/store")
func TestTmp(t *testing.T){
	ctx:=context.Background()
	cfg,err:=configs.Load("../configs/example.yaml", func(string)(string,bool){return "",false}); if err!=nil{t.Fatal(err)}
	for _, o := range []store.Options{{EmbeddedPath: "/tmp/chtest/data2"}, {Addr: "127.0.0.1:19000"}} {
		db,err:=store.Open(ctx,o); if err!=nil{t.Fatal(err)}
		db.Exec(ctx,"DROP TABLE IF EXISTS predictions")
		if err:=store.Apply(ctx,db,"default",[]store.TableDef{store.PredictionsDef("predictions")});err!=nil{t.Fatal(err)}
		from:=time.Date(2026,11,2,0,0,0,0,time.UTC)
		in,_:=ParseIncident("slice_block:+10h:+14h:FR",from)
		st,err:=Generate(ctx,db,Options{Model:&cfg.Models[0],From:from,To:from.Add(24*time.Hour),Rate:1000,Seed:1,Incidents:[]Incident{in}})
		if err!=nil{q,a:=insertSQL(Options{Model:&cfg.Models[0],Rate:1000,Incidents:[]Incident{in}},from,1800,0,10); s,_:=store.Bind(q,a...); fmt.Println(s); t.Fatal(err)}
		res,err:=db.Query(ctx,"SELECT role, count(), avg(decision), avg(score), uniqExact(country), countIf(request_id LIKE 'canary-%') FROM predictions GROUP BY role ORDER BY role")
		if err!=nil{t.Fatal(err)}
		fmt.Println(db.Engine(), st, res.Rows)
		res,_=db.Query(ctx,"SELECT country, count(), avg(decision) FROM predictions WHERE role='production' GROUP BY country ORDER BY count() DESC LIMIT 5")
		fmt.Println(res.Rows)
		res,err=db.Query(ctx,"SELECT toHour(ts) h, count(), avg(decision) FROM predictions WHERE role='production' AND country='FR' GROUP BY h ORDER BY h")
		fmt.Println(res.Rows, err)
		res,err=db.Query(ctx,"SELECT name, avg(isNull(v)), avg(v), quantileExact(0.5)(v) FROM predictions ARRAY JOIN feature_names AS name, feature_values AS v WHERE role='production' GROUP BY name ORDER BY name")
		fmt.Println(res.Rows, err)
		db.Close()
	}
}
