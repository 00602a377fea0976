//! The demo company both simulators load: one company, a department tree, people and a few
//! materials. [`Seed::builtin`] is the fixed demo company (杭州示例科技有限公司);
//! [`Seed::generate`] makes a large deterministic company for benchmarks; [`Seed::load`] reads
//! the same structure from a JSON file, so the DingTalk and the Kingdee sandbox can share one
//! seed file.
//!
//! Everything here is deterministic: the same call gives the same bytes on every machine
//! (a local SplitMix64 generator, no dependency on `rand`'s algorithms).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The id of the root department (the company itself), as on DingTalk.
pub const ROOT_DEPT_ID: u64 = 1;

/// The whole demo company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    pub company: Company,
    pub departments: Vec<Department>,
    pub users: Vec<User>,
    #[serde(default)]
    pub materials: Vec<Material>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    pub name: String,
    /// DingTalk corp id.
    pub corp_id: String,
    /// Kingdee organisation number (`FCreateOrgId.FNumber`, `FUseOrgId.FNumber`).
    pub org_number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Department {
    pub id: u64,
    /// `None` only for the root department ([`ROOT_DEPT_ID`]).
    pub parent_id: Option<u64>,
    pub name: String,
    pub order: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub userid: String,
    pub unionid: String,
    pub name: String,
    pub mobile: String,
    pub job_number: String,
    pub email: Option<String>,
    pub dept_ids: Vec<u64>,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub hired_date: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Material {
    pub number: String,
    pub name: String,
    pub spec: String,
    pub unit: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("seed file {path} is not valid JSON for a seed: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("invalid seed: {0}")]
    Invalid(String),
}

/// Upper bounds for [`Seed::generate`].
pub const MAX_GENERATED_USERS: usize = 100_000;
pub const MAX_GENERATED_DEPTS: usize = 5_000;

const COMPANY_NAME: &str = "杭州示例科技有限公司";
const CORP_ID: &str = "ding5f2c8a0e1b3d4c6a";
const ORG_NUMBER: &str = "100";

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "闫", "段", "雷", "侯",
    "龙", "史", "陶", "黎", "贺", "顾", "毛", "郝", "龚", "邵", "万", "钱", "严", "覃", "武", "戴",
    "欧阳", "司马", "诸葛", "上官",
];

const GIVEN_CHARS: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "萍", "红", "建", "文", "辉", "鹏", "宇",
    "浩", "晨", "欣", "怡", "子", "涵", "梓", "轩", "雨", "博", "嘉", "思", "佳", "琪", "晓", "婷",
    "俊", "凯", "昊", "然", "天", "瑞", "悦", "彤", "琳", "斌", "峰", "志", "海", "丹", "颖", "倩",
    "亮", "东", "雪", "飞", "健", "春", "兰", "云", "振", "鑫", "晶", "卓", "远", "航", "泽", "一",
];

/// SplitMix64: tiny, fast and stable across platforms and crate versions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }
}

fn chinese_name(rng: &mut Rng) -> String {
    let mut name = String::from(rng.pick(SURNAMES));
    name.push_str(rng.pick(GIVEN_CHARS));
    // About 60 % of given names have two characters.
    if rng.below(10) < 6 {
        name.push_str(rng.pick(GIVEN_CHARS));
    }
    name
}

/// A userid in the style DingTalk assigns to accounts created in the admin console.
fn userid_for(index: usize, rng: &mut Rng) -> String {
    // The index makes it unique; the random tail makes it look assigned.
    format!("0{:07}{:05}", index + 1, rng.next_u64() % 100_000)
}

fn unionid_for(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::with_capacity(28);
    for _ in 0..22 {
        let c = ALPHABET
            .get(rng.below(ALPHABET.len()))
            .copied()
            .unwrap_or(b'A');
        s.push(char::from(c));
    }
    s.push_str("iEiE");
    s
}

/// Unique 138xxxxxxxx mobiles: an affine permutation of the index over 10^8.
fn mobile_for(index: usize) -> String {
    // 37_139_121 is coprime with 10^8, so the map is a bijection on 0..10^8.
    let n = (index as u64)
        .wrapping_mul(37_139_121)
        .wrapping_add(12_345_678)
        % 100_000_000;
    format!("138{n:08}")
}

fn hired_date(rng: &mut Rng) -> String {
    let year = 2012 + rng.below(13);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Pinyin-free e-mail: the job number at the company domain, for about 80 % of people.
fn email_for(job_number: &str, rng: &mut Rng) -> Option<String> {
    (rng.below(10) < 8).then(|| format!("{}@example-hz.com", job_number.to_lowercase()))
}

fn job_number_for(index: usize) -> String {
    if index < 9999 {
        format!("E{:04}", index + 1)
    } else {
        format!("E{}", index + 1)
    }
}

fn builtin_materials() -> Vec<Material> {
    let rows: &[(&str, &str, &str, &str)] = &[
        ("WL0001", "笔记本电脑", "14英寸 i7/16G/512G", "台"),
        ("WL0002", "显示器", "27英寸 4K", "台"),
        ("WL0003", "无线鼠标", "蓝牙 5.0", "个"),
        ("WL0004", "机械键盘", "87键 红轴", "个"),
        ("WL0005", "A4打印纸", "70g 500张/包", "包"),
        ("WL0006", "签字笔", "0.5mm 黑色", "支"),
        ("WL0007", "服务器", "2U 双路 256G内存", "台"),
        ("WL0008", "交换机", "48口 千兆", "台"),
        ("WL0009", "网线", "超六类 3米", "根"),
        ("WL0010", "会议平板", "75英寸", "台"),
        ("WL0011", "咖啡豆", "意式拼配 1kg", "袋"),
        ("WL0012", "工牌挂绳", "定制 蓝色", "条"),
    ];
    rows.iter()
        .map(|(number, name, spec, unit)| Material {
            number: (*number).to_owned(),
            name: (*name).to_owned(),
            spec: (*spec).to_owned(),
            unit: (*unit).to_owned(),
        })
        .collect()
}

impl Seed {
    /// The fixed demo company: 5 levels (company → 中心 → 部 → 组 → 小组), 240 people.
    pub fn builtin() -> Seed {
        // (id, parent, name, titles used for people placed there)
        let tree: &[(u64, u64, &str)] = &[
            (2, 1, "总经办"),
            (3, 1, "研发中心"),
            (4, 3, "平台研发部"),
            (5, 4, "后端组"),
            (6, 5, "基础架构小组"),
            (7, 5, "支付小组"),
            (8, 4, "前端组"),
            (9, 4, "测试组"),
            (10, 3, "数据智能部"),
            (11, 10, "数据平台组"),
            (12, 10, "算法组"),
            (13, 3, "产品设计部"),
            (14, 1, "财务部"),
            (15, 14, "会计核算组"),
            (16, 14, "资金管理组"),
            (17, 1, "人力资源部"),
            (18, 17, "招聘组"),
            (19, 17, "薪酬绩效组"),
            (20, 1, "销售中心"),
            (21, 20, "华东大区"),
            (22, 21, "杭州办事处"),
            (23, 22, "西湖销售一组"),
            (24, 22, "滨江销售二组"),
            (25, 21, "上海办事处"),
            (26, 21, "南京办事处"),
            (27, 20, "华南大区"),
            (28, 27, "深圳办事处"),
            (29, 27, "广州办事处"),
            (30, 20, "华北大区"),
            (31, 30, "北京办事处"),
            (32, 1, "行政部"),
            (33, 1, "法务部"),
        ];
        let mut departments = vec![Department {
            id: ROOT_DEPT_ID,
            parent_id: None,
            name: COMPANY_NAME.to_owned(),
            order: 0,
        }];
        let mut order_by_parent: HashMap<u64, u32> = HashMap::new();
        for (id, parent, name) in tree {
            let order = order_by_parent.entry(*parent).or_insert(0);
            *order += 1;
            departments.push(Department {
                id: *id,
                parent_id: Some(*parent),
                name: (*name).to_owned(),
                order: *order,
            });
        }

        let titles_for = |dept: u64| -> &'static [&'static str] {
            match dept {
                2 => &["总经理", "副总经理", "总经理助理"],
                3..=9 | 11 => &[
                    "高级工程师",
                    "软件工程师",
                    "技术专家",
                    "测试工程师",
                    "架构师",
                ],
                10 | 12 => &["算法工程师", "数据工程师", "数据分析师"],
                13 => &["产品经理", "交互设计师", "视觉设计师"],
                14..=16 => &["会计", "出纳", "财务经理", "税务专员"],
                17..=19 => &["招聘专员", "HRBP", "薪酬专员"],
                20..=31 => &["销售代表", "客户经理", "区域经理", "售前工程师"],
                32 => &["行政专员", "前台"],
                _ => &["法务专员", "法务经理"],
            }
        };
        let placeable: Vec<u64> = tree.iter().map(|(id, _, _)| *id).collect();
        let mut rng = Rng::new(20_240_601);
        let mut users = Vec::with_capacity(240);
        for i in 0..240usize {
            // Everyone has a main department; about one in ten also belongs to a second one.
            let dept = placeable
                .get(rng.below(placeable.len()))
                .copied()
                .unwrap_or(ROOT_DEPT_ID);
            let mut dept_ids = vec![dept];
            if rng.below(10) == 0 {
                let second = placeable
                    .get(rng.below(placeable.len()))
                    .copied()
                    .unwrap_or(ROOT_DEPT_ID);
                if second != dept {
                    dept_ids.push(second);
                }
            }
            let job_number = job_number_for(i);
            let name = chinese_name(&mut rng);
            let title = rng.pick(titles_for(dept)).to_owned();
            users.push(User {
                userid: userid_for(i, &mut rng),
                unionid: unionid_for(&mut rng),
                name,
                mobile: mobile_for(i),
                email: email_for(&job_number, &mut rng),
                job_number,
                dept_ids,
                title,
                hired_date: hired_date(&mut rng),
                // A few people have left (离职) but are still in the seed.
                active: i % 37 != 36,
            });
        }
        Seed {
            company: Company {
                name: COMPANY_NAME.to_owned(),
                corp_id: CORP_ID.to_owned(),
                org_number: ORG_NUMBER.to_owned(),
            },
            departments,
            users,
            materials: builtin_materials(),
        }
    }

    /// A large deterministic company for benchmarks: `depts` departments below the root
    /// spread over 4 levels (5 with the root), `users` people. Values above
    /// [`MAX_GENERATED_USERS`] / [`MAX_GENERATED_DEPTS`] are clamped.
    pub fn generate(users: usize, depts: usize) -> Seed {
        let users = users.min(MAX_GENERATED_USERS);
        let depts = depts.clamp(1, MAX_GENERATED_DEPTS);
        // Level sizes below the root: roughly 2 %, 10 %, 30 %, rest; each at least 1 while
        // departments remain.
        let mut sizes = [0usize; 4];
        let mut remaining = depts;
        for (level, share) in [(0usize, 2usize), (1, 10), (2, 30)] {
            let want = (depts * share / 100).max(1).min(remaining);
            if let Some(slot) = sizes.get_mut(level) {
                *slot = want;
            }
            remaining -= want;
        }
        sizes[3] = remaining;
        const REGIONS: &[&str] = &["华东", "华南", "华北", "华中", "西南", "西北", "东北"];
        const KINDS: &[&str] = &["事业部", "中心", "部", "组"];

        let mut departments = vec![Department {
            id: ROOT_DEPT_ID,
            parent_id: None,
            name: COMPANY_NAME.to_owned(),
            order: 0,
        }];
        let mut previous: Vec<u64> = vec![ROOT_DEPT_ID];
        let mut next_id = ROOT_DEPT_ID + 1;
        for (level, size) in sizes.iter().enumerate() {
            if *size == 0 {
                break;
            }
            let mut current = Vec::with_capacity(*size);
            let mut order_by_parent: HashMap<u64, u32> = HashMap::new();
            for j in 0..*size {
                let parent = previous
                    .get(j % previous.len())
                    .copied()
                    .unwrap_or(ROOT_DEPT_ID);
                let order = order_by_parent.entry(parent).or_insert(0);
                *order += 1;
                let region = REGIONS.get(j % REGIONS.len()).copied().unwrap_or("华东");
                let kind = KINDS.get(level).copied().unwrap_or("组");
                departments.push(Department {
                    id: next_id,
                    parent_id: Some(parent),
                    name: format!("{region}{}{kind}{}", level + 1, j + 1),
                    order: *order,
                });
                current.push(next_id);
                next_id += 1;
            }
            previous = current;
        }

        let mut rng = Rng::new(0x5EED_0000 ^ (users as u64) << 16 ^ depts as u64);
        let below_root: Vec<u64> = departments.iter().skip(1).map(|d| d.id).collect();
        let titles = ["工程师", "高级工程师", "经理", "专员", "主管", "总监"];
        let people = (0..users)
            .map(|i| {
                let dept = below_root
                    .get(i % below_root.len().max(1))
                    .copied()
                    .unwrap_or(ROOT_DEPT_ID);
                let job_number = job_number_for(i);
                User {
                    userid: userid_for(i, &mut rng),
                    unionid: unionid_for(&mut rng),
                    name: chinese_name(&mut rng),
                    mobile: mobile_for(i),
                    email: email_for(&job_number, &mut rng),
                    job_number,
                    dept_ids: vec![dept],
                    title: titles
                        .get(rng.below(titles.len()))
                        .copied()
                        .unwrap_or("专员")
                        .to_owned(),
                    hired_date: hired_date(&mut rng),
                    active: true,
                }
            })
            .collect();
        Seed {
            company: Company {
                name: COMPANY_NAME.to_owned(),
                corp_id: CORP_ID.to_owned(),
                org_number: ORG_NUMBER.to_owned(),
            },
            departments,
            users: people,
            materials: builtin_materials(),
        }
    }

    /// Reads a seed from a JSON file (the format `serde_json::to_string(&Seed)` writes) and
    /// checks it with [`Seed::validate`].
    pub fn load(path: impl AsRef<Path>) -> Result<Seed, SeedError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Io {
            path: shown.clone(),
            source,
        })?;
        let seed: Seed = serde_json::from_str(&text).map_err(|source| SeedError::Json {
            path: shown,
            source,
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// Structural checks: unique ids, every parent exists, exactly one root, no cycles,
    /// unique userid / mobile / job number, every person's departments exist.
    pub fn validate(&self) -> Result<(), SeedError> {
        let ids: HashSet<u64> = self.departments.iter().map(|d| d.id).collect();
        if ids.len() != self.departments.len() {
            return Err(SeedError::Invalid("duplicate department id".into()));
        }
        let roots = self
            .departments
            .iter()
            .filter(|d| d.parent_id.is_none())
            .count();
        if roots != 1 {
            return Err(SeedError::Invalid(format!(
                "expected exactly one root department, found {roots}"
            )));
        }
        for d in &self.departments {
            if let Some(p) = d.parent_id
                && !ids.contains(&p)
            {
                return Err(SeedError::Invalid(format!(
                    "department {} has unknown parent {p}",
                    d.id
                )));
            }
        }
        if self.depths().is_none() {
            return Err(SeedError::Invalid("department tree has a cycle".into()));
        }
        let mut userids = HashSet::new();
        let mut mobiles = HashSet::new();
        let mut jobs = HashSet::new();
        for u in &self.users {
            if !userids.insert(u.userid.as_str()) {
                return Err(SeedError::Invalid(format!("duplicate userid {}", u.userid)));
            }
            if !mobiles.insert(u.mobile.as_str()) {
                return Err(SeedError::Invalid(format!("duplicate mobile {}", u.mobile)));
            }
            if !jobs.insert(u.job_number.as_str()) {
                return Err(SeedError::Invalid(format!(
                    "duplicate job number {}",
                    u.job_number
                )));
            }
            if let Some(bad) = u.dept_ids.iter().find(|d| !ids.contains(d)) {
                return Err(SeedError::Invalid(format!(
                    "user {} is in unknown department {bad}",
                    u.userid
                )));
            }
        }
        Ok(())
    }

    /// Depth of every department (the root is 1); `None` if a parent is missing or the tree
    /// has a cycle.
    pub fn depths(&self) -> Option<HashMap<u64, usize>> {
        let parent: HashMap<u64, Option<u64>> = self
            .departments
            .iter()
            .map(|d| (d.id, d.parent_id))
            .collect();
        let mut depth: HashMap<u64, usize> = HashMap::with_capacity(parent.len());
        for d in &self.departments {
            // Walk up until a known depth or the root, then fill the path in.
            let mut path = Vec::new();
            let mut current = d.id;
            let base = loop {
                if let Some(known) = depth.get(&current) {
                    break *known;
                }
                if path.len() > parent.len() {
                    return None;
                }
                path.push(current);
                match parent.get(&current)? {
                    None => break 0,
                    Some(p) => current = *p,
                }
            };
            for (i, id) in path.iter().rev().enumerate() {
                depth.insert(*id, base + i + 1);
            }
        }
        Some(depth)
    }

    /// Depth of a department: the root is 1. `None` for an unknown id or a cycle.
    pub fn depth_of(&self, id: u64) -> Option<usize> {
        self.depths()?.get(&id).copied()
    }

    /// Number of levels of the tree, the root counted as level 1.
    pub fn max_depth(&self) -> usize {
        self.depths()
            .and_then(|d| d.values().max().copied())
            .unwrap_or(0)
    }

    pub fn department(&self, id: u64) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_valid_deep_and_large() {
        let seed = Seed::builtin();
        seed.validate().unwrap();
        assert_eq!(seed.company.name, "杭州示例科技有限公司");
        assert_eq!(seed.company.org_number, "100");
        assert!(seed.max_depth() >= 5, "depth {}", seed.max_depth());
        assert!(seed.users.len() >= 200);
        for name in [
            "总经办",
            "研发中心",
            "平台研发部",
            "后端组",
            "财务部",
            "销售中心",
            "华东大区",
            "杭州办事处",
        ] {
            assert!(seed.departments.iter().any(|d| d.name == name), "{name}");
        }
        let backend = seed
            .departments
            .iter()
            .find(|d| d.name == "后端组")
            .unwrap();
        assert_eq!(seed.depth_of(backend.id), Some(4));
    }

    #[test]
    fn builtin_is_deterministic_with_unique_keys() {
        let a = Seed::builtin();
        let b = Seed::builtin();
        assert_eq!(a, b);
        let mobiles: HashSet<_> = a.users.iter().map(|u| &u.mobile).collect();
        assert_eq!(mobiles.len(), a.users.len());
        assert!(
            a.users
                .iter()
                .all(|u| u.mobile.starts_with("138") && u.mobile.len() == 11)
        );
        let unions: HashSet<_> = a.users.iter().map(|u| &u.unionid).collect();
        assert_eq!(unions.len(), a.users.len());
        assert_eq!(a.users[0].job_number, "E0001");
        assert_eq!(a.users[199].job_number, "E0200");
        assert!(a.users.iter().all(|u| {
            let n = u.name.chars().count();
            (2..=4).contains(&n)
        }));
        assert!(a.users.iter().any(|u| u.email.is_none()));
        assert!(a.users.iter().any(|u| !u.active));
        assert!(!a.materials.is_empty());
    }

    #[test]
    fn generate_large_is_five_levels_and_unique() {
        let seed = Seed::generate(100_000, 5_000);
        seed.validate().unwrap();
        assert_eq!(seed.users.len(), 100_000);
        assert_eq!(seed.departments.len(), 5_001);
        assert_eq!(seed.max_depth(), 5);
        assert_eq!(seed.users[99_999].job_number, "E100000");
        assert_eq!(Seed::generate(100_000, 5_000), seed);
    }

    #[test]
    fn generate_small_and_clamped() {
        let seed = Seed::generate(10, 3);
        seed.validate().unwrap();
        assert_eq!(seed.departments.len(), 4);
        assert_eq!(seed.users.len(), 10);
        let big = Seed::generate(200_000, 9_000);
        assert_eq!(big.users.len(), MAX_GENERATED_USERS);
        assert_eq!(big.departments.len(), MAX_GENERATED_DEPTS + 1);
    }

    #[test]
    fn load_round_trips_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.json");
        let seed = Seed::builtin();
        std::fs::write(&path, serde_json::to_string_pretty(&seed).unwrap()).unwrap();
        assert_eq!(Seed::load(&path).unwrap(), seed);

        let mut bad = seed.clone();
        bad.users[1].mobile = bad.users[0].mobile.clone();
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        assert!(matches!(Seed::load(&path), Err(SeedError::Invalid(_))));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(Seed::load(&path), Err(SeedError::Json { .. })));
        assert!(matches!(
            Seed::load(dir.path().join("missing.json")),
            Err(SeedError::Io { .. })
        ));
    }
}
